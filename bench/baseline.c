/*
 * The bench's baselines (bench/bench.py): a bare libfcgi responder, preforked
 * like sfconnectd, answering about 200 bytes of JSON to every request
 * (scenario B), or the same after one prepared point SELECT over libpq
 * (scenario C, when a conninfo is given).
 *
 *     baseline SOCKET NPROC [CONNINFO [SLUG]]
 *
 * Listens on the unix socket SOCKET (mode 0666) with NPROC workers; each
 * worker dies with the parent. Not part of the product.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcgiapp.h>
#include <libpq-fe.h>

#define SELECT_SQL	"SELECT id, slug, name FROM orgs WHERE slug = $1"

/*
 * Ends the request as sfconnectd does (src/fcgi.c): the request read to
 * its end, the streams closed (the response and FCGI_END_REQUEST in one
 * write), then a plain close, not libfcgi's lingering one (a shutdown and
 * a wait of up to 2 s for the peer to close first). A baseline slower
 * than the product at the same job would flatter it.
 */
static void
close_now(FCGX_Request *r)
{
	int	 fd;

	while (FCGX_GetChar(r->in) != EOF)
		;
	FCGX_FClose(r->err);
	FCGX_FClose(r->out);
	fd = r->ipcFd;
	r->ipcFd = -1;
	r->keepConnection = 0;
	FCGX_Finish_r(r);
	close(fd);
}

/* One worker's loop; returns only on error. */
static int
serve(int fd, const char *conninfo, const char *slug)
{
	FCGX_Request	 r;
	PGconn		*pg = NULL;
	PGresult	*res;
	char		 body[512];
	int		 n;

	if (conninfo != NULL) {
		pg = PQconnectdb(conninfo);
		if (PQstatus(pg) != CONNECTION_OK) {
			fprintf(stderr, "baseline: %s", PQerrorMessage(pg));
			return 1;
		}
		res = PQprepare(pg, "point", SELECT_SQL, 1, NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			fprintf(stderr, "baseline: %s", PQerrorMessage(pg));
			return 1;
		}
		PQclear(res);
	}
	if (FCGX_InitRequest(&r, fd, 0) != 0)
		return 1;
	while (FCGX_Accept_r(&r) == 0) {
		const char *id = "0", *name = "";

		res = NULL;
		if (pg != NULL) {
			res = PQexecPrepared(pg, "point", 1, &slug, NULL, NULL, 0);
			if (PQresultStatus(res) == PGRES_TUPLES_OK &&
			    PQntuples(res) == 1) {
				id = PQgetvalue(res, 0, 0);
				name = PQgetvalue(res, 0, 2);
			}
		}
		n = snprintf(body, sizeof(body), "{\"org\":\"%s\",\"id\":%s,"
		    "\"name\":\"%.40s\",\"status\":\"connected\","
		    "\"salesforce_org_id\":\"00D000000000001AAA\","
		    "\"instance_url\":\"https://example.my.salesforce.com\","
		    "\"last_error\":null,\"banner\":null}", slug, id, name);
		PQclear(res);
		FCGX_FPrintF(r.out, "Status: 200 OK\r\nContent-Type: "
		    "application/json\r\nContent-Length: %d\r\n\r\n", n);
		FCGX_PutStr(body, n, r.out);
		close_now(&r);
	}
	PQfinish(pg);
	return 0;
}

int
main(int argc, char **argv)
{
	int	 fd, nproc;
	pid_t	 parent = getpid();

	if (argc < 3 || (nproc = atoi(argv[2])) < 1) {
		fprintf(stderr, "usage: baseline SOCKET NPROC [CONNINFO [SLUG]]\n");
		return 2;
	}
	unlink(argv[1]);
	if (FCGX_Init() != 0 || (fd = FCGX_OpenSocket(argv[1], 512)) < 0) {
		fprintf(stderr, "baseline: cannot listen on %s\n", argv[1]);
		return 1;
	}
	chmod(argv[1], 0666);
	for (int i = 0; i < nproc; i++) {
		pid_t pid = fork();

		if (pid == -1)
			return 1;
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			if (getppid() != parent)
				_exit(0);
			_exit(serve(fd, argc > 3 ? argv[3] : NULL,
			    argc > 4 ? argv[4] : "bench"));
		}
	}
	while (wait(NULL) > 0)
		;
	return 0;
}
