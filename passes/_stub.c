typedef int milc_passes_stub_unused;
