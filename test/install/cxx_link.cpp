// test/install/cxx_link.cpp -- the public headers from C++: every library's
// header in one translation unit, one call into each library.  Without the
// extern "C" guards the names would be mangled and the link would fail.
#include "backend/backend.h"
#include "coreml/coreml.h"
#include "frontend/frontend.h"
#include "ir/ir.h"
#include "passes/passes.h"
#include "runtime/runtime.h"

#include <cstdio>
#include <cstring>

int main() {
    const char text[] = "program(1.3)\n{\n    func main<ios18>(tensor<fp32, [2]> x) {\n"
                        "            tensor<fp32, [2]> y = relu(x = x)[name = string(\"y\")];\n"
                        "        } -> (y);\n}\n";
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = mil_parse("cxx.mil", text, std::strlen(text), nullptr, &d);   // frontend
    MilPassOptions po;
    mil_pass_options_init(&po);                                                    // passes
    int bad = !p || mil_verify(p, &d) != 0 || mil_pass_run(p, &po, &d) != 0;      // ir, passes
    MilLowerOptions lo = {};
    MilRtProgram *rp = bad ? nullptr : mil_lower(p, &lo, &d);                      // backend
    MilRtFunc *f = rp ? mil_rt_program_find_func(rp, "main") : nullptr;            // runtime
    std::printf("%s %d %s %s\n", mil_dtype_name(MIL_DT_FP16), f ? f->nops : -1,
                mil_milb_is_path("a.milb") ? "milb" : "?",
                mil_coreml_is_package("a.mlpackage") ? "mlpackage" : "?");             // coreml
    mil_rt_program_free(rp);
    mil_program_free(p);
    mil_diag_free(&d);
    return f ? 0 : 1;
}
