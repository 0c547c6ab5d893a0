#ifndef SFC_SERVICE_H
#define SFC_SERVICE_H

#include "cfg.h"

/*
 * The listening socket: fd 3 from systemd (LISTEN_FDS for this pid), else
 * bound from cfg->listen ("unix:PATH", mode 0660, or "HOST:PORT"). -1
 * after logging.
 */
int	service_listen(const struct cfg *cfg);

/*
 * Checks fastcgi_allowed_peers, and refuses a TCP listener on an address
 * other than loopback unless the list is set explicitly. -1 after logging.
 */
int	service_check_peers(int fd, const struct cfg *cfg);

/* Tells systemd (Type=notify) a state such as "READY=1"; nothing without it. */
void	service_notify(const char *state);

#endif
