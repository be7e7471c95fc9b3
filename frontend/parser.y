%define api.pure full
%{
%}
%token T_DUMMY
%%
start: %empty ;
%%
