typedef int milc_fe_stub_unused;
