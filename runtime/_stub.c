typedef int milc_rt_stub_unused;
