#!/bin/sh
# test/install/install_test.sh BUILD_DIR SOURCE_DIR -- the installed package.
#
# Installs the (already built) build tree into a temporary prefix and checks,
# from that prefix only:
#   - the file layout: include/milc holds exactly the public headers and what
#     they include; static + shared libraries with soname libmil<x>.so.0 that
#     export only mil_* symbols; the runtime library needs no compiler library;
#   - every public header compiles on its own as C11 and as C++11 with
#     -Wall -Wextra -pedantic -Werror, and a C++ program links all five;
#   - examples/embed-ir built with pkg-config + cc and with CMake
#     find_package(milc) (shared and static targets) prints expected.txt, and
#     that project runs the installed milc (milc::milc) at its build time;
#   - examples/embed built with `pkg-config milc-runtime` links the runtime
#     alone (NEEDED entries, undefined symbols, a static link with no symbol
#     of a compiler library) and runs a .milb compiled by the installed milc
#     like the installed mil-run;
#   - libmilanesim's "ane-sim" device computes what the CPU device computes;
#   - the man pages document every option of --help and format cleanly;
#   - `make install DESTDIR=... PREFIX=...` and `make uninstall`.
# Environment: CC, CXX, MILC_TEST_FLAGS (extra compile/link flags: sanitizers).
set -eu
BUILD=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
CC=${CC:-cc}
CXX=${CXX:-c++}
FLAGS=${MILC_TEST_FLAGS:-}
T=$(mktemp -d "${TMPDIR:-/tmp}/milc-install.XXXXXX")
trap 'rm -rf "$T"' EXIT
P=$T/prefix
fail() { echo "install_test: FAIL: $*" >&2; exit 1; }
step() { echo "install_test: $*"; }

cmake --install "$BUILD" --prefix "$P" >"$T/install.log" 2>&1 || { cat "$T/install.log"; fail "cmake --install"; }
LIB=$P/lib
[ -d "$LIB/pkgconfig" ] || LIB=$(dirname "$(find "$P" -name milc-ir.pc)")/..
LIB=$(cd "$LIB" && pwd)
INC=$P/include/milc
export PKG_CONFIG_PATH="$LIB/pkgconfig"
export PATH="$P/bin:$PATH"
unset MAKEFLAGS MFLAGS MAKELEVEL 2>/dev/null || true

# ------------------------------------------------------------------ layout
step "layout"
HEADERS="backend/backend.h coreml/coreml.h frontend/frontend.h ir/ir.h passes/passes.h runtime/runtime.h runtime/ane/ane_sim.h"
# pkg-config name : library
LIBS="ir:milir frontend:milfrontend passes:milpasses backend:milbackend coreml:milcoreml runtime:milruntime ane-sim:milanesim"
(cd "$INC" && find . -type f | sed 's,^\./,,' | sort) >"$T/installed-headers"
printf '#include "%s"\n' $HEADERS >"$T/all.c"
# what the public headers include, transitively (project files only)
$CC -std=c11 -MM -I"$INC" "$T/all.c" | tr ' \\' '\n\n' | grep "^$INC/" | sed "s,^$INC/,," | sort -u >"$T/needed-headers"
diff "$T/needed-headers" "$T/installed-headers" >"$T/d" ||
    { cat "$T/d"; fail "include/milc must hold exactly the public headers and the files they include (< needed, > installed)"; }
for h in $HEADERS; do grep -qx "$h" "$T/installed-headers" || fail "public header $h not installed"; done
for nl in $LIBS; do
    n=${nl%%:*} l=${nl#*:}; l=${l#mil}
    [ -f "$LIB/libmil$l.a" ] || fail "libmil$l.a not installed"
    so=$(readlink -f "$LIB/libmil$l.so") || fail "libmil$l.so not installed"
    [ "$(readlink "$LIB/libmil$l.so")" = "libmil$l.so.0" ] || fail "libmil$l.so must point at libmil$l.so.0"
    soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
    [ "$soname" = "libmil$l.so.0" ] || fail "soname of libmil$l.so is '$soname', expected libmil$l.so.0"
    case $so in *.so.0.*) ;; *) fail "libmil$l.so resolves to $so (no full version)";; esac
    other=$(nm -D --defined-only "$so" | awk '$2 ~ /[TDBRVW]/ {print $3}' | grep -v '^mil_' | grep -v '^_' | head -3 || true)
    [ -z "$other" ] || fail "libmil$l.so exports symbols outside mil_*: $other"
    [ -f "$LIB/pkgconfig/milc-$n.pc" ] || fail "milc-$n.pc not installed"
    pkg-config --exists "milc-$n" || fail "pkg-config cannot read milc-$n.pc"
done
readelf -d "$LIB/libmilruntime.so" | grep NEEDED | grep -q 'libmil' &&
    fail "libmilruntime.so needs a compiler library: $(readelf -d "$LIB/libmilruntime.so" | grep NEEDED | grep libmil)"
for m in milc mil-run; do [ -x "$P/bin/$m" ] || fail "bin/$m not installed"; done
TOOLS=$(ls "$P/bin")
for m in $TOOLS; do [ -f "$P/share/man/man1/$m.1" ] || fail "bin/$m has no man page (write man/$m.1)"; done
[ -f "$LIB/cmake/milc/milcConfig.cmake" ] || fail "lib/cmake/milc/milcConfig.cmake not installed"

# ------------------------------------------------------------------ headers
step "headers as C11 and C++"
WARN="-Wall -Wextra -pedantic -Werror"
for h in $(cat "$T/installed-headers"); do
    case $h in *.def) continue;; esac
    printf '#include "%s"\n' "$h" >"$T/one.c"
    $CC -std=c11 $WARN -fsyntax-only -I"$INC" "$T/one.c" 2>"$T/err" || { cat "$T/err"; fail "$h does not compile on its own as C11"; }
    $CXX -std=c++11 $WARN -fsyntax-only -I"$INC" -x c++ "$T/one.c" 2>"$T/err" || { cat "$T/err"; fail "$h does not compile on its own as C++11"; }
done
$CXX -std=c++11 $WARN $FLAGS $(pkg-config --cflags milc-backend milc-coreml milc-frontend milc-passes) "$SRC/test/install/cxx_link.cpp" \
    $(pkg-config --libs milc-backend milc-coreml milc-frontend milc-passes) -o "$T/cxx_link" 2>"$T/err" ||
    { cat "$T/err"; fail "C++ program using every header does not link (extern \"C\" guards?)"; }
out=$(LD_LIBRARY_PATH="$LIB" "$T/cxx_link") || fail "cxx_link failed"
[ "$out" = "fp16 1 milb mlpackage" ] || fail "cxx_link printed '$out'"

# ------------------------------------------------------------ embed-ir: pkg-config
step "examples/embed-ir with pkg-config"
$CC -std=c11 $WARN $FLAGS "$SRC/examples/embed-ir/embed_ir.c" $(pkg-config --cflags --libs milc-backend milc-passes) \
    -o "$T/embed-ir" 2>"$T/err" || { cat "$T/err"; fail "embed-ir does not build with pkg-config"; }
LD_LIBRARY_PATH="$LIB" "$T/embed-ir" >"$T/out" || fail "embed-ir (pkg-config) failed"
cmp -s "$T/out" "$SRC/examples/embed-ir/expected.txt" ||
    { diff "$SRC/examples/embed-ir/expected.txt" "$T/out"; fail "embed-ir (pkg-config) output differs from expected.txt"; }

# the README's example, as printed there
sed -n '/^## Embedding/,/^## /p' "$SRC/README.md" | sed -n '/^```c$/,/^```$/p' | sed '1d;$d' >"$T/readme.c"
[ -s "$T/readme.c" ] || fail "README.md has no C example in its Embedding section"
$CC -std=c11 $WARN $FLAGS "$T/readme.c" $(pkg-config --cflags --libs milc-backend milc-frontend milc-passes) \
    -o "$T/readme" 2>"$T/err" || { cat "$T/err"; fail "the README Embedding example does not build"; }
printf 'program(1.3)\n{\n    func main<ios18>(tensor<fp32, [2, 3]> x) {\n%s\n%s\n        } -> (y);\n}\n' \
    '            tensor<fp32, [2, 3]> r = relu(x = x)[name = string("r")];' \
    '            tensor<fp32, [2, 3]> y = relu(x = r)[name = string("y")];' >"$T/two.mil"
LD_LIBRARY_PATH="$LIB" "$T/readme" "$T/two.mil" >"$T/out" || fail "the README example failed"
[ "$(tail -n 1 "$T/out")" = "2 ops" ] || fail "the README example printed '$(tail -n 1 "$T/out")', expected '2 ops'"
grep -q '= relu(x = r)' "$T/out" || fail "the README example did not print the program"

# --------------------------------------------------------- embed-ir: find_package
step "examples/embed-ir with CMake find_package(milc)"
cmake -S "$SRC/examples/embed-ir" -B "$T/cmake" -DCMAKE_PREFIX_PATH="$P" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER="$CC" -DCMAKE_C_FLAGS="$FLAGS" -DCMAKE_EXE_LINKER_FLAGS="$FLAGS" >"$T/cmake.log" 2>&1 ||
    { cat "$T/cmake.log"; fail "configuring examples/embed-ir with find_package(milc)"; }
cmake --build "$T/cmake" >>"$T/cmake.log" 2>&1 || { cat "$T/cmake.log"; fail "building examples/embed-ir with CMake"; }
for e in embed-ir embed-ir-static; do
    "$T/cmake/$e" >"$T/out" || fail "$e (CMake) failed"
    cmp -s "$T/out" "$SRC/examples/embed-ir/expected.txt" || { diff "$SRC/examples/embed-ir/expected.txt" "$T/out"; fail "$e (CMake) output differs"; }
done
readelf -d "$T/cmake/embed-ir-static" | grep NEEDED | grep -q libmil && fail "embed-ir-static needs a shared milc library"
readelf -d "$T/cmake/embed" | grep NEEDED | grep libmil | grep -v -q libmilruntime && fail "embed (CMake milc::runtime) needs a compiler library"

# ------------------------------------------------------- embed: the runtime alone
step "examples/embed links milc-runtime only"
for f in $(pkg-config --libs milc-runtime) $(pkg-config --static --libs milc-runtime); do
    case $f in -lmil*) [ "$f" = -lmilruntime ] || fail "pkg-config milc-runtime names $f";; esac
done
$CC -std=c11 $WARN $FLAGS "$SRC/examples/embed.c" $(pkg-config --cflags --libs milc-runtime) -o "$T/embed" 2>"$T/err" ||
    { cat "$T/err"; fail "examples/embed does not build with pkg-config milc-runtime"; }
needed=$(readelf -d "$T/embed" | sed -n 's/.*(NEEDED).*\[\(libmil.*\)\]/\1/p')
[ "$needed" = "libmilruntime.so.0" ] || fail "embed needs '$needed', expected libmilruntime.so.0 only"
nm -D --defined-only "$LIB/libmilruntime.so" | awk '{print $3}' | sort -u >"$T/rt-syms"
nm -u "$T/embed" | awk '{print $2}' | grep '^mil' | sort -u >"$T/embed-undef"
missing=$(comm -23 "$T/embed-undef" "$T/rt-syms" | head -3)
[ -z "$missing" ] || fail "embed needs symbols libmilruntime.so does not define: $missing"
# static: not one symbol of a compiler library may end up in the binary
$CC -std=c11 $FLAGS "$SRC/examples/embed.c" $(pkg-config --cflags milc-runtime) "$LIB/libmilruntime.a" \
    $(pkg-config --static --libs milc-runtime | sed 's/-lmilruntime\( \|$\)/ /') -o "$T/embed-static" 2>"$T/err" ||
    { cat "$T/err"; fail "examples/embed does not link statically against libmilruntime.a"; }
for l in ir frontend passes backend coreml anesim; do nm -g --defined-only "$LIB/libmil$l.a" 2>/dev/null; done |
    awk 'NF == 3 {print $3}' | sort -u >"$T/compiler-syms"
nm --defined-only "$T/embed-static" | awk 'NF == 3 {print $3}' | sort -u >"$T/static-syms"
pulled=$(comm -12 "$T/compiler-syms" "$T/static-syms" | head -3)
[ -z "$pulled" ] || fail "the static embed contains compiler code: $pulled"
# and it runs what the installed milc compiled, like the installed mil-run
cp "$SRC/examples/embed-ir/relu.mil" "$T/p.mil"
mkdir -p "$T/ref" "$T/r1" "$T/r2" "$T/r3" "$T/r4"
mil-run --random-inputs 7 -o "$T/ref" "$T/p.mil" >/dev/null || fail "installed mil-run"
milc -O2 --emit=milb -o "$T/p.milb" "$SRC/examples/embed-ir/relu.mil" || fail "installed milc --emit=milb"
mil-run -i x="$T/ref/y.npy" -o "$T/r1" "$T/p.mil" >/dev/null || fail "installed mil-run -i"
LD_LIBRARY_PATH="$LIB" "$T/embed" "$T/p.milb" "$T/r2" x="$T/ref/y.npy" >/dev/null || fail "embed (shared) run"
"$T/embed-static" "$T/p.milb" "$T/r3" x="$T/ref/y.npy" >/dev/null || fail "embed (static) run"
cmp -s "$T/r1/y.npy" "$T/r2/y.npy" || fail "embed (shared) output differs from mil-run"
cmp -s "$T/r1/y.npy" "$T/r3/y.npy" || fail "embed (static) output differs from mil-run"
# the CMake project ran milc::milc at its build time
cmp -s "$T/p.milb" "$T/cmake/relu.milb" || fail "relu.milb built through milc::milc differs from milc's"
"$T/cmake/embed" "$T/cmake/relu.milb" "$T/r4" x="$T/ref/y.npy" >/dev/null || fail "embed (CMake milc::runtime) run"
cmp -s "$T/r1/y.npy" "$T/r4/y.npy" || fail "embed (CMake) output differs from mil-run"

# libmilanesim: the ANE device over the test double, as the CPU device computes
$CC -std=c11 $WARN $FLAGS "$SRC/test/install/ane_sim_run.c" $(pkg-config --cflags --libs milc-ane-sim) -o "$T/ane_sim_run" \
    2>"$T/err" || { cat "$T/err"; fail "a program using milc-ane-sim does not build"; }
out=$(LD_LIBRARY_PATH="$LIB" "$T/ane_sim_run" "$T/p.milb") || fail "ane_sim_run failed"
[ "$out" = "ane-sim same" ] || fail "ane_sim_run printed '$out', expected 'ane-sim same'"

# -------------------------------------------------------------- man pages
step "man pages"
for m in $TOOLS; do
    page=$P/share/man/man1/$m.1
    "$m" --help >"$T/help" 2>&1 || true
    # every option the --help text mentions (-o, --emit, ...) is in the page
    for o in $(grep -oE '(^|[ |,(])--?[A-Za-z][A-Za-z0-9-]*' "$T/help" | sed 's/^[ |,(]//' | sort -u); do
        sed 's/\\-/-/g; s/\\f[BIRP]//g' "$page" | grep -q -e "$o\\b" ||
            fail "man/$m.1 does not document $o (from '$m --help'); add it to man/$m.1"
    done
    LC_ALL=C.UTF-8 MANWIDTH=80 groff -man -ww -z -Tutf8 "$page" 2>"$T/err"
    [ ! -s "$T/err" ] || { cat "$T/err"; fail "man/$m.1: groff warnings"; }
done

# ---------------------------------------------------- make install / uninstall
step "make install DESTDIR=... PREFIX=... / make uninstall"
D=$T/dest
make -s -C "$SRC" install BUILD="$BUILD" PREFIX=/opt/mp DESTDIR="$D" INSTALL_MANIFEST="$T/manifest" \
    >"$T/make.log" 2>&1 || { cat "$T/make.log"; fail "make install DESTDIR"; }
[ -x "$D/opt/mp/bin/milc" ] || fail "make install DESTDIR=$D PREFIX=/opt/mp: no $D/opt/mp/bin/milc"
PKG_CONFIG_PATH=$(dirname "$(find "$D" -name milc-ir.pc)") pkg-config --cflags milc-ir | grep -q "/include/milc" ||
    fail "milc-ir.pc under DESTDIR does not give the include directory"
make -s -C "$SRC" uninstall BUILD="$BUILD" INSTALL_MANIFEST="$T/manifest" >"$T/make.log" 2>&1 ||
    { cat "$T/make.log"; fail "make uninstall"; }
left=$(find "$D" -type f -o -type l | head -3)
[ -z "$left" ] || fail "make uninstall left $left"
left=$(find "$D" -type d -name milc | head -3)
[ -z "$left" ] || fail "make uninstall left the directory $left"
step "ok"
