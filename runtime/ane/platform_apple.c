/* runtime/ane/platform_apple.c -- the Apple entry points on macOS: the real
 * objc runtime, CoreFoundation, IOSurface and Foundation functions (built
 * only on Apple platforms; links -framework CoreFoundation IOSurface
 * Foundation).  Wrappers exist only where Apple's prototypes use types the
 * table spells differently (CFStringRef vs const void *). */
#include "runtime/ane/ane_api.h"

#include <CoreFoundation/CoreFoundation.h>
#include <IOSurface/IOSurface.h>
#include <dlfcn.h>
#include <objc/message.h>
#include <objc/runtime.h>

extern void *objc_autoreleasePoolPush(void);
extern void objc_autoreleasePoolPop(void *pool);
extern id NSTemporaryDirectory(void);

static int compiles;

static AneId get_class(const char *name) { return (AneId)objc_getClass(name); }
static AneSel sel(const char *name) { return (AneSel)sel_registerName(name); }
static AneCFType data_create(const void *alloc, const uint8_t *bytes, long len) {
    return CFDataCreate((CFAllocatorRef)alloc, bytes, (CFIndex)len);
}
static AneCFType string_create(const void *alloc, const char *s, uint32_t enc) {
    return CFStringCreateWithCString((CFAllocatorRef)alloc, s, enc);
}
static AneCFType number_create(const void *alloc, long type, const void *v) {
    return CFNumberCreate((CFAllocatorRef)alloc, (CFNumberType)type, v);
}
static AneCFType dict_create(const void *alloc, const void **k, const void **v, long n, const void *kcb,
                             const void *vcb) {
    return CFDictionaryCreate((CFAllocatorRef)alloc, k, v, (CFIndex)n, kcb, vcb);
}
static AneCFType array_create(const void *alloc, const void **v, long n, const void *cb) {
    return CFArrayCreate((CFAllocatorRef)alloc, v, (CFIndex)n, cb);
}
static AneBool string_get(AneCFType s, char *buf, long size, uint32_t enc) {
    return (AneBool)CFStringGetCString((CFStringRef)s, buf, (CFIndex)size, enc);
}
static void release(AneCFType o) { CFRelease(o); }
static AneCFType surface_create(AneCFType props) { return IOSurfaceCreate((CFDictionaryRef)props); }
static int surface_lock(AneCFType s, uint32_t o, uint32_t *seed) { return IOSurfaceLock((IOSurfaceRef)s, o, seed); }
static int surface_unlock(AneCFType s, uint32_t o, uint32_t *seed) {
    return IOSurfaceUnlock((IOSurfaceRef)s, o, seed);
}
static void *surface_base(AneCFType s) { return IOSurfaceGetBaseAddress((IOSurfaceRef)s); }
static size_t surface_alloc_size(AneCFType s) { return IOSurfaceGetAllocSize((IOSurfaceRef)s); }
static int temp_dir(char *buf, size_t size) {
    CFStringRef t = (CFStringRef)NSTemporaryDirectory();
    return t && CFStringGetCString(t, buf, (CFIndex)size, kCFStringEncodingUTF8) ? 0 : -1;
}

const AneApi mil_ane_platform_api = {
    .name = "macOS",
    .framework = "/System/Library/PrivateFrameworks/AppleNeuralEngine.framework/AppleNeuralEngine",
    .dl_open = dlopen,
    .dl_error = dlerror,
    .get_class = get_class,
    .sel = sel,
    .msg_send = (AneImp)objc_msgSend,
    .pool_push = objc_autoreleasePoolPush,
    .pool_pop = objc_autoreleasePoolPop,
    .data_create = data_create,
    .string_create = string_create,
    .number_create = number_create,
    .dict_create = dict_create,
    .array_create = array_create,
    .string_get = string_get,
    .release = release,
    .dict_key_callbacks = &kCFTypeDictionaryKeyCallBacks,
    .dict_value_callbacks = &kCFTypeDictionaryValueCallBacks,
    .array_callbacks = &kCFTypeArrayCallBacks,
    .surface_create = surface_create,
    .surface_lock = surface_lock,
    .surface_unlock = surface_unlock,
    .surface_base = surface_base,
    .surface_alloc_size = surface_alloc_size,
    .k_width = (const AneCFType *)&kIOSurfaceWidth,
    .k_height = (const AneCFType *)&kIOSurfaceHeight,
    .k_bytes_per_element = (const AneCFType *)&kIOSurfaceBytesPerElement,
    .k_bytes_per_row = (const AneCFType *)&kIOSurfaceBytesPerRow,
    .k_alloc_size = (const AneCFType *)&kIOSurfaceAllocSize,
    .k_pixel_format = (const AneCFType *)&kIOSurfacePixelFormat,
    .temp_dir = temp_dir,
    .compile_count = &compiles,
};
