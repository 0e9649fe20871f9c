/* Host-side terminal helpers (console.c): each returns 0 or a negative errno. */
#ifndef KAPSEL_HOST_CONSOLE_H
#define KAPSEL_HOST_CONSOLE_H

int kapsel_host_openpty(int *master_out, int *slave_out);
int kapsel_host_send_fd(const char *path, int fd, const char *name);
int kapsel_host_get_winsize(int fd, unsigned int *rows, unsigned int *cols);
int kapsel_host_set_ctty(int fd);

#endif
