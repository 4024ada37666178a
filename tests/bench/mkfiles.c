/*
 * mkfiles — create COUNT empty files DIR/f00000 ... in one process.
 *
 * Used by tests/bench/bench.sh to time file creation without paying for a
 * fork+exec per file (touch in a loop would measure the shell, not the
 * filesystem). Each file is open(O_CREAT|O_EXCL|O_WRONLY) then close(), the
 * same two syscalls an application creating a file makes. Built by the bench
 * script itself with cc into a temporary directory; not part of the Makefile.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char path[4096];
	long i, n;
	int fd;

	if (argc != 3) {
		fprintf(stderr, "usage: mkfiles DIR COUNT\n");
		return 2;
	}
	n = strtol(argv[2], NULL, 10);
	if (n < 0 || n > 10000000) {
		fprintf(stderr, "mkfiles: bad count '%s'\n", argv[2]);
		return 2;
	}
	if (mkdir(argv[1], 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "mkfiles: cannot create directory '%s': %s\n",
			argv[1], strerror(errno));
		return 1;
	}
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/f%05ld", argv[1], i);
		fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
		if (fd < 0) {
			fprintf(stderr, "mkfiles: cannot create '%s': %s\n",
				path, strerror(errno));
			return 1;
		}
		if (close(fd) < 0) {
			fprintf(stderr, "mkfiles: close of '%s' failed: %s\n",
				path, strerror(errno));
			return 1;
		}
	}
	return 0;
}
