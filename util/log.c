/*
 * util/log.c — one place for messages.
 *
 * In the foreground lines go to stderr prefixed "lakefs: "; once the daemon
 * detaches they go to syslog. The level is process-wide and changed only at
 * start-up; writes are single fprintf/syslog calls, which are thread-safe.
 */
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

#include "util/log.h"

static int use_syslog;
static enum log_level max_level = LOG_LV_INFO;

void log_use_syslog(void)
{
	openlog("lakefs", LOG_PID, LOG_DAEMON);
	use_syslog = 1;
}

void log_set_level(enum log_level lv)
{
	max_level = lv;
}

void log_msg(enum log_level lv, const char *fmt, ...)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char line[1024];
	va_list ap;

	if (lv > max_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (use_syslog)
		syslog(prio[lv], "%s", line);
	else
		fprintf(stderr, "lakefs: %s\n", line);
}
