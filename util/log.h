/* util/log.h — logging to stderr (foreground) or syslog (daemon). */
#ifndef LAKEFS_UTIL_LOG_H
#define LAKEFS_UTIL_LOG_H

enum log_level { LOG_LV_ERR, LOG_LV_WARN, LOG_LV_INFO, LOG_LV_DEBUG };

/* Route messages to syslog (ident "lakefs") instead of stderr. */
void log_use_syslog(void);
void log_set_level(enum log_level lv);
void log_msg(enum log_level lv, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_err(...)   log_msg(LOG_LV_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LV_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LV_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LV_DEBUG, __VA_ARGS__)

#endif
