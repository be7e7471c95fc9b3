typedef int milc_ir_stub_unused;
