/*
 * sfconnectd as a service: its listening socket (systemd's or its own),
 * who may speak FastCGI on it, and the states it reports to systemd.
 */
#include <errno.h>
#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fcgi_guard.h"
#include "log.h"
#include "service.h"

static int
bind_unix(const char *path)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_error("listen", "%s exists and is not a socket", path);
			return -1;
		}
		unlink(path);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    chmod(path, 0660) == -1 || listen(fd, 128) == -1) {
		log_error("listen", "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int
bind_tcp(const char *spec)
{
	struct addrinfo	 hints, *ai = NULL;
	char		 host[256];
	const char	*colon = strrchr(spec, ':');
	int		 fd = -1, one = 1;

	snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0) {
		log_error("listen", "cannot resolve %s", spec);
		return -1;
	}
	if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) == -1 || listen(fd, 128) == -1) {
		log_error("listen", "%s: %s", spec, strerror(errno));
		if (fd != -1)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

int
service_listen(const struct cfg *cfg)
{
	const char	*fds = getenv("LISTEN_FDS"), *pid = getenv("LISTEN_PID");

	if (fds != NULL && pid != NULL && atol(pid) == (long)getpid() &&
	    atoi(fds) >= 1)
		return 3;
	if (strncmp(cfg->listen, "unix:", 5) == 0)
		return bind_unix(cfg->listen + 5);
	return bind_tcp(cfg->listen);
}

/*
 * Checks fastcgi_allowed_peers, and refuses a TCP listener on an address
 * other than loopback unless the list is set explicitly: whoever reaches
 * the port speaks FastCGI, forged parameters included. -1 after logging.
 */
int
service_check_peers(int fd, const struct cfg *cfg)
{
	struct fcgi_peers	 peers;
	struct sockaddr_storage	 ss;
	socklen_t		 len = sizeof(ss);
	const char		*list = cfg->fastcgi_allowed_peers;
	char			 err[256];

	if (fcgi_peers_parse(&peers, list[0] != '\0' ? list :
	    FCGI_PEERS_DEFAULT, err, sizeof(err)) == -1) {
		log_error("config", "%s", err);
		return -1;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1) {
		log_error("listen", "getsockname: %s", strerror(errno));
		return -1;
	}
	if ((ss.ss_family == AF_INET || ss.ss_family == AF_INET6) &&
	    list[0] == '\0' &&
	    !fcgi_addr_is_loopback((struct sockaddr *)&ss, len)) {
		log_error("config", "listen: %s is not a loopback address; set "
		    "fastcgi_allowed_peers to the addresses of the front ends",
		    cfg->listen);
		return -1;
	}
	return 0;
}

/*
 * Tells systemd (Type=notify) how the service is: "READY=1",
 * "RELOADING=1", "STOPPING=1". One datagram to $NOTIFY_SOCKET, a unix
 * socket path or, with a leading '@', an abstract name; nothing without
 * it. No libsystemd: this is all sd_notify() does for a single state.
 */
void
service_notify(const char *state)
{
	struct sockaddr_un	 sun;
	const char		*name = getenv("NOTIFY_SOCKET");
	size_t			 len;
	socklen_t		 alen;
	int			 fd;

	if (name == NULL || (name[0] != '/' && name[0] != '@') ||
	    (len = strlen(name)) < 2 || len >= sizeof(sun.sun_path))
		return;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, name, len);
	if (name[0] == '@')
		sun.sun_path[0] = '\0';
	alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
	    (name[0] == '/'));
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL,
	    (struct sockaddr *)&sun, alen) == -1)
		log_warn("notify", "NOTIFY_SOCKET: %s", strerror(errno));
	close(fd);
}
