/* Small helpers private to the core and the Lua binding: the one container_of, which turns a
 * pointer to a member (a libev watcher, an embedded generic struct) back into its owner. */
#ifndef MOONTUN_CORE_UTIL_H
#define MOONTUN_CORE_UTIL_H

#include <stddef.h>

/* The struct of type `type` whose member `member` is at ptr. */
#define mt_container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#endif
