/* SPDX-License-Identifier: BSD-2-Clause */
/* The address a listener is bound to, as the examples print it in their "listening on" line. */
#ifndef RINGO_EXAMPLES_LISTEN_ADDR_H
#define RINGO_EXAMPLES_LISTEN_ADDR_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

/* Room for an IPv6 literal in brackets. */
#define LISTEN_HOST_LEN (INET6_ADDRSTRLEN + 2)

/* fd's local host, IPv6 in brackets (ready for host:port), or "?". */
static inline void listen_host(int fd, char host[LISTEN_HOST_LEN])
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	strcpy(host, "?");
	if (getsockname(fd, (struct sockaddr *)&ss, &len))
		return;
	if (ss.ss_family == AF_INET6) {
		host[0] = '[';
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host + 1,
			  INET6_ADDRSTRLEN);
		strcat(host, "]");
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, LISTEN_HOST_LEN);
	}
}

#endif /* RINGO_EXAMPLES_LISTEN_ADDR_H */
