/* Logging to stderr, one line per event, filtered by level. Lines carry a wall-clock time so
 * logs of two ends can be read side by side. */
#include "moontun/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

enum mt_log_level mt_log_level = MT_LOG_INFO;
void (*mt_log_sink)(enum mt_log_level level, const char *line);

static const char *const level_names[] = {"error: ", "warning: ", "", "debug: "};

void mt_log(enum mt_log_level level, const char *fmt, ...)
{
    if (level > mt_log_level)
        return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    /* One fprintf per line keeps lines whole when stderr is shared with other processes. */
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (mt_log_sink != NULL) {
        mt_log_sink(level, line);
        return;
    }
    fprintf(stderr, "%02d:%02d:%02d.%03ld moontun: %s%s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
            (long)(tv.tv_usec / 1000), level_names[level], line);
}
