/* Logging: one line per event to stderr, with a level filter set by -d / -q. */
#ifndef MOONTUN_LOG_H
#define MOONTUN_LOG_H

enum mt_log_level {
    MT_LOG_ERROR = 0,
    MT_LOG_WARN = 1,
    MT_LOG_INFO = 2,  /* events: peer up/down, start, stop (the default) */
    MT_LOG_DEBUG = 3, /* every packet */
};

extern enum mt_log_level mt_log_level;
/* Where lines go instead of stderr when set (moontun test keeps the scripts' lines). */
extern void (*mt_log_sink)(enum mt_log_level level, const char *line);

void mt_log(enum mt_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define mt_error(...) mt_log(MT_LOG_ERROR, __VA_ARGS__)
#define mt_warn(...)  mt_log(MT_LOG_WARN, __VA_ARGS__)
#define mt_info(...)  mt_log(MT_LOG_INFO, __VA_ARGS__)
#define mt_debug(...)                                                                              \
    do {                                                                                           \
        if (mt_log_level >= MT_LOG_DEBUG)                                                          \
            mt_log(MT_LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)

#endif
