/* runtime/ane/ane_api.h -- the Apple entry points the ANE device calls, as
 * one table (internal to the runtime and the test double).
 *
 * The device (runtime/ane/device.c) is written once, in C, against the objc
 * runtime, CoreFoundation, IOSurface and dlopen.  It reaches them only
 * through an AneApi table so that one source serves three link-time choices:
 *   platform_apple.c  macOS: the real functions (objc_msgSend, CFDataCreate,
 *                     IOSurfaceCreate, dlopen of AppleNeuralEngine.framework)
 *   platform_none.c   every other OS: dlopen of the framework path, which
 *                     fails, so the device reports "not available"
 *   sim/double.c      libmilanesim: the recording test double of the same
 *                     entry points (objc_msgSend is an assembly trampoline
 *                     with the real calling convention)
 * Both the first two define mil_ane_platform_api; the double defines its own
 * table and hands it to mil_ane_device_new_api (ane_int.h).
 *
 * The types mirror the C ABI of Apple's headers: every objc and CF object is
 * a pointer, BOOL is a signed char (a bool on arm64 is read the same way),
 * CFIndex is a long.  Message sends cast `msg_send` to the exact function
 * type of the selector, as Objective-C code does with objc_msgSend. */
#ifndef MILC_RUNTIME_ANE_API_H
#define MILC_RUNTIME_ANE_API_H

#include <stddef.h>
#include <stdint.h>

typedef void *AneId;                 /* id (also Class) */
typedef void *AneSel;                /* SEL */
typedef const void *AneCFType;       /* CFTypeRef, CFStringRef, CFDataRef, ... */
typedef signed char AneBool;         /* BOOL */
typedef void (*AneImp)(void);        /* objc_msgSend before the cast */

/* CoreFoundation constants used by the device (values of Apple's headers). */
enum { ANE_CF_STRING_UTF8 = 0x08000100, ANE_CF_NUMBER_SINT64 = 4 };

typedef struct AneApi {
    const char *name;                /* "macOS", "unavailable", "ane-sim" */
    const char *framework;           /* path given to dl_open */
    /* dlfcn */
    void *(*dl_open)(const char *path, int mode);
    char *(*dl_error)(void);
    /* objc runtime */
    AneId (*get_class)(const char *name);            /* objc_getClass */
    AneSel (*sel)(const char *name);                 /* sel_registerName */
    AneImp msg_send;                                 /* objc_msgSend */
    void *(*pool_push)(void);                        /* objc_autoreleasePoolPush */
    void (*pool_pop)(void *pool);                    /* objc_autoreleasePoolPop */
    /* CoreFoundation (toll-free bridged to NSData, NSString, ...) */
    AneCFType (*data_create)(const void *alloc, const uint8_t *bytes, long len);
    AneCFType (*string_create)(const void *alloc, const char *cstr, uint32_t encoding);
    AneCFType (*number_create)(const void *alloc, long type, const void *value);
    AneCFType (*dict_create)(const void *alloc, const void **keys, const void **values, long n,
                             const void *key_callbacks, const void *value_callbacks);
    AneCFType (*array_create)(const void *alloc, const void **values, long n, const void *callbacks);
    AneBool (*string_get)(AneCFType s, char *buf, long size, uint32_t encoding);   /* CFStringGetCString */
    void (*release)(AneCFType obj);                  /* CFRelease */
    const void *dict_key_callbacks;                  /* &kCFTypeDictionaryKeyCallBacks */
    const void *dict_value_callbacks;                /* &kCFTypeDictionaryValueCallBacks */
    const void *array_callbacks;                     /* &kCFTypeArrayCallBacks */
    /* IOSurface */
    AneCFType (*surface_create)(AneCFType props);    /* IOSurfaceCreate */
    int (*surface_lock)(AneCFType s, uint32_t options, uint32_t *seed);
    int (*surface_unlock)(AneCFType s, uint32_t options, uint32_t *seed);
    void *(*surface_base)(AneCFType s);              /* IOSurfaceGetBaseAddress */
    size_t (*surface_alloc_size)(AneCFType s);       /* IOSurfaceGetAllocSize */
    const AneCFType *k_width, *k_height, *k_bytes_per_element, *k_bytes_per_row, *k_alloc_size,
        *k_pixel_format;                             /* &kIOSurfaceWidth, ... */
    /* NSTemporaryDirectory() as a C string into buf (0, or -1 on failure) */
    int (*temp_dir)(char *buf, size_t size);
    /* compiles made through this table in this process (the route's limit
     * is per process) */
    int *compile_count;
} AneApi;

/* The table of this build's platform (platform_apple.c or platform_none.c). */
extern const AneApi mil_ane_platform_api;

#endif /* MILC_RUNTIME_ANE_API_H */
