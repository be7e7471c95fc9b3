typedef int milc_backend_stub_unused;
