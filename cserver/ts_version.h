/* Version strings; the build passes the real ones with -D (serverbuild.py). */
#ifndef TS_VERSION_H
#define TS_VERSION_H

#ifndef TS_VERSION
#define TS_VERSION "0.0.0"
#endif
#ifndef TS_WASMTIME_VERSION
#define TS_WASMTIME_VERSION "unknown"
#endif

#endif
