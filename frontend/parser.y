/* frontend/parser.y -- the MIL grammar (docs/mil-format.md §3).
 *
 * A pure LALR(1) parser with no conflicts: the type constructors and dtype
 * names are keywords, so after `=` an IDENT is a reference and a keyword
 * starts a typed literal, and a statement starts with a type (it has results)
 * or an IDENT (zero results).  Actions only call the fe_* builders (build.c),
 * which make the IR and do the checks.  Literals are driven as events
 * (fe_lit_open / scalar / close) against the type pushed by `T(`.
 *
 * Error recovery is per statement (`error ';'`); syntax errors are reported
 * by yyreport_syntax_error below as "unexpected X, expected Y".
 */
%define api.pure full
%define api.prefix {mil_yy}
%define api.location.type {FeLoc}
%define parse.error custom
%define parse.lac full
%locations
%lex-param {void *scanner}
%parse-param {void *scanner} {FeState *ps}

%code requires {
#include "frontend/fe_int.h"
}

%code {
#include <stdio.h>
#include <string.h>
int mil_yylex(MIL_YYSTYPE *lval, FeLoc *lloc, void *scanner);
static void mil_yyerror(FeLoc *l, void *scanner, FeState *ps, const char *msg);
static FeTok no_tok(void) { return (FeTok){ NULL, 0, NULL }; }
}

%union {
    FeTok tok;
    MilDType dt;
    FeType ty;
    MilConst *cst;
    MilBinding bind;
    int64_t len;
    int mark;
}

%token <tok> IDENT "identifier" INT "integer" FLOAT "number" STR "string"
%token <tok> NEG_INF "-inf"
%token <dt> DTYPE "dtype"
%token <tok> KW_PROGRAM "program" KW_FUNC "func" KW_TENSOR "tensor" KW_LIST "list"
%token <tok> KW_DICT "dict" KW_TUPLE "tuple" KW_STATE "state" KW_TENSOR_BUFFER "tensor_buffer"
%token <tok> KW_TRUE "true" KW_FALSE "false" KW_BLOBFILE "BLOBFILE"
%token ARROW "->"

%type <tok> version opset_opt
%type <dt> dtype
%type <ty> type
%type <cst> value
%type <bind> atom
%type <len> list_len
%type <mark> tuple_open

%%

file
    : program
    ;

program
    : "program" '(' version ')' { fe_version(ps, $3, @3); ps->attr_target = ATTR_PROGRAM; }
      attrs_opt '{' functions '}'
    ;

version
    : FLOAT
    | INT
    ;

functions
    : %empty
    | functions function
    ;

function
    : "func" IDENT '<' IDENT '>' { fe_func_begin(ps, $2, @2, $4); }
      '(' params_opt ')' { ps->attr_target = ATTR_FUNC; } attrs_opt block ';'
    ;

params_opt
    : %empty
    | params
    ;

params
    : param
    | params ',' param
    ;

param
    : type IDENT { fe_param(ps, $1, $2, @2); }
    ;

block
    : '{' stmts '}' "->" '(' outs_opt ')' { fe_block_end(ps, @4); }
    ;

outs_opt
    : %empty
    | outs
    ;

outs
    : out
    | outs ',' out
    ;

out
    : IDENT { fe_output(ps, $1, @1); }
    ;

stmts
    : %empty
    | stmts stmt
    ;

stmt
    : results '=' op_call nested_opt ';'          { fe_stmt_end(ps); }
    | op_call nested_opt ';'                      { fe_stmt_end(ps); }
    | '(' results ')' '=' op_call nested_opt ';'  { fe_paren_results(ps, @1, '('); }
    | '[' results ']' '=' op_call nested_opt ';'  { fe_paren_results(ps, @1, '['); }
    | error ';'                                   { fe_stmt_error(ps); }
    ;

results
    : result
    | results ',' result
    ;

result
    : type IDENT { fe_result(ps, $1, $2, @2); }
    ;

op_call
    : IDENT opset_opt { fe_op_begin(ps, $1, @1, $2, $2.s != NULL); }
      '(' args_opt ')' { ps->attr_target = ATTR_OP; } attrs_opt
    ;

opset_opt
    : %empty            { $$ = no_tok(); }
    | '<' IDENT '>'     { $$ = $2; }
    ;

nested_opt
    : %empty
    | nested_opt nested_block
    ;

nested_block
    : '{' { fe_nested_begin(ps, @1); } stmts '}' "->" '(' outs_opt ')' { fe_nested_end(ps); }
    ;

args_opt
    : %empty
    | args
    ;

args
    : arg
    | args ',' arg
    ;

arg
    : IDENT '=' atom                                  { fe_arg(ps, $1, @1, $3); }
    | IDENT '=' '(' { fe_vb_reset(ps); } atoms ')'    { fe_arg_tuple(ps, $1, @1); }
    ;

atoms
    : atom              { fe_vb_push(ps, $1); }
    | atoms ',' atom    { fe_vb_push(ps, $3); }
    ;

atom
    : IDENT             { $$ = fe_ref(ps, $1, @1); }
    | value             { $$ = (MilBinding){ NULL, $1 }; if (!$1) ps->vb_bad = true; }
    ;

attrs_opt
    : %empty
    | '[' ']'
    | '[' attrs ']'
    ;

attrs
    : attr
    | attrs ',' attr
    ;

attr
    : IDENT '=' value   { fe_attr(ps, $1, @1, $3); }
    ;

    /* ------------------------------------------------------------ types */

type
    : DTYPE                                         { $$ = fe_ty_scalar(ps, $1); }
    | "tensor" '<' dtype ',' '[' { fe_dims_reset(ps); } dims_opt ']' '>'
                                                    { $$ = fe_ty_tensor(ps, $3, @1); }
    | "list" '<' type ',' list_len '>'              { $$ = fe_ty_list(ps, $3, $5); }
    | "dict" '<' type ',' type '>'                  { $$ = fe_ty_dict(ps, $3, $5); }
    | "tuple" tuple_open types_opt '>'              { $$ = fe_ty_tuple(ps, $2); }
    | "state" '<' type '>'                          { $$ = fe_ty_state(ps, $3, @1); }
    | "tensor_buffer" '<' dtype tb_fields '>'       { $$ = fe_ty_buffer(ps, @1); }
    ;

tuple_open
    : '<'               { $$ = fe_tys_mark(ps); }
    ;

types_opt
    : %empty
    | types
    ;

types
    : type              { fe_tys_push(ps, $1); }
    | types ',' type    { fe_tys_push(ps, $3); }
    ;

dtype
    : DTYPE
    | IDENT             { $$ = fe_bad_dtype(ps, $1, @1); }
    ;

dims_opt
    : %empty
    | dims
    ;

dims
    : dim
    | dims ',' dim
    ;

dim
    : INT               { fe_dim(ps, $1, @1, 'i'); }
    | '?'               { fe_dim(ps, no_tok(), @1, '?'); }
    | IDENT             { fe_dim(ps, $1, @1, 'n'); }
    ;

list_len
    : INT               { $$ = fe_list_len(ps, $1, @1); }
    | '?'               { $$ = -1; }
    ;

tb_fields
    : %empty
    | tb_fields ',' IDENT '=' '[' tb_ints ']'
    ;

tb_ints
    : INT
    | tb_ints ',' INT
    ;

    /* ---------------------------------------------------------- literals */

value
    : type '(' { fe_lit_begin(ps, $1, @1); } payload ')' { $$ = fe_lit_end(ps); }
    ;

payload
    : %empty
    | literal
    | "BLOBFILE" '(' { fe_blob_begin(ps, @1); } blob_args_opt ')' { fe_lit_blob(ps); }
    ;

    /* Any names in any number, so a missing, unknown or repeated argument
     * gets its own message (fe_blob_arg / fe_lit_blob), not a syntax error. */
blob_args_opt
    : %empty
    | blob_args
    ;

blob_args
    : blob_arg
    | blob_args ',' blob_arg
    ;

blob_arg
    : IDENT '=' value   { fe_blob_arg(ps, $1, @1, $3); }
    ;

literal
    : scalar
    | '[' { fe_lit_open(ps, '[', @1); } lits_opt ']' { fe_lit_close(ps, '[', @4); }
    | '{' { fe_lit_open(ps, '{', @1); } pairs_opt '}' { fe_lit_close(ps, '{', @4); }
    | '(' { fe_lit_open(ps, '(', @1); } lits ')' { fe_lit_close(ps, '(', @4); }
    ;

lits_opt
    : %empty
    | lits
    ;

lits
    : literal
    | lits ',' literal
    ;

pairs_opt
    : %empty
    | pairs
    ;

pairs
    : pair
    | pairs ',' pair
    ;

pair
    : '{' { fe_lit_open(ps, 'p', @1); } literal ',' literal '}' { fe_lit_close(ps, 'p', @6); }
    ;

scalar
    : INT               { fe_lit_scalar(ps, LK_INT, $1, @1); }
    | FLOAT             { fe_lit_scalar(ps, LK_FLOAT, $1, @1); }
    | STR               { fe_lit_scalar(ps, LK_STR, $1, @1); }
    | "true"            { fe_lit_scalar(ps, LK_TRUE, $1, @1); }
    | "false"           { fe_lit_scalar(ps, LK_FALSE, $1, @1); }
    | IDENT             { fe_lit_scalar(ps, LK_IDENT, $1, @1); }
    | "-inf"            { fe_lit_scalar(ps, LK_NEGINF, $1, @1); }
    ;

%%

static void mil_yyerror(FeLoc *l, void *scanner, FeState *ps, const char *msg) {
    (void)scanner;
    fe_error(ps, *l, "%s", msg);
}

/* A token kind as the user reads it: 'func', ';', identifier, ... */
static const char *sym_desc(yysymbol_kind_t k, char *buf, size_t size) {
    switch (k) {
    case YYSYMBOL_YYEOF: return "end of input";
    case YYSYMBOL_IDENT: return "identifier";
    case YYSYMBOL_INT: return "integer";
    case YYSYMBOL_FLOAT: return "number";
    case YYSYMBOL_STR: return "string";
    case YYSYMBOL_DTYPE: return "dtype";
    default: break;
    }
    const char *n = yysymbol_name(k);
    size_t len = strlen(n);
    if (len >= 2 && (n[0] == '"' || n[0] == '\'')) n++, len -= 2;
    snprintf(buf, size, "'%.*s'", (int)len, n);
    return buf;
}

static int yyreport_syntax_error(const yypcontext_t *ctx, void *scanner, FeState *ps) {
    (void)scanner;
    if (ps->quiet_syntax || ps->stop) {
        ps->quiet_syntax = false;
        return 0;
    }
    yysymbol_kind_t tok = yypcontext_token(ctx);
    char found[96];
    if (tok == YYSYMBOL_YYEOF) snprintf(found, sizeof found, "end of input");
    else {
        char t[64];
        fe_tokdesc(ps->text + ps->tok_off, ps->tok_len, t, sizeof t);
        switch (tok) {
        case YYSYMBOL_IDENT: snprintf(found, sizeof found, "identifier %s", t); break;
        case YYSYMBOL_INT: case YYSYMBOL_FLOAT: snprintf(found, sizeof found, "number %s", t); break;
        case YYSYMBOL_STR: snprintf(found, sizeof found, "string %s", t); break;
        default: snprintf(found, sizeof found, "%s", t); break;
        }
    }
    enum { MAXEXP = 6 };
    yysymbol_kind_t exp[MAXEXP];
    int n = yypcontext_expected_tokens(ctx, exp, MAXEXP);
    char msg[512];
    int k = snprintf(msg, sizeof msg, "unexpected %s", found);
    if (n > 0 && k > 0 && (size_t)k < sizeof msg) {
        k += snprintf(msg + k, sizeof msg - (size_t)k, ", expected ");
        for (int i = 0; i < n && k > 0 && (size_t)k < sizeof msg; i++) {
            char nb[64];
            k += snprintf(msg + k, sizeof msg - (size_t)k, "%s%s", i == 0 ? "" : i == n - 1 ? " or " : ", ",
                          sym_desc(exp[i], nb, sizeof nb));
        }
    }
    fe_error(ps, *yypcontext_location(ctx), "%s", msg);
    return 0;
}
