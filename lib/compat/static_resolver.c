/* SPDX-License-Identifier: MIT */
/*
 * Host names for the Redis backend. glibc's getaddrinfo() in a static
 * executable loads NSS modules at run time, so the static build resolves
 * names itself, the way Debian's default "hosts: files dns" does: numeric
 * addresses, then /etc/hosts, then DNS through libresolv. Only numeric
 * services (ports) are supported; that is all the Redis backend passes.
 * Linked only into the fully static binary, with
 * -Wl,--wrap=getaddrinfo,--wrap=freeaddrinfo.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

int __wrap_getaddrinfo(const char *node, const char *service,
                       const struct addrinfo *hints, struct addrinfo **res);
void __wrap_freeaddrinfo(struct addrinfo *ai);

struct ai_node {
  struct addrinfo ai;
  struct sockaddr_storage sa;
};

/* Appends one address (family AF_INET or AF_INET6, raw bytes) to *tail. */
static int add_addr(struct addrinfo ***tail, int family, const void *addr,
                    unsigned port, const struct addrinfo *hints)
{
  struct ai_node *n = calloc(1, sizeof(*n));

  if (n == NULL)
    return EAI_MEMORY;
  n->ai.ai_family = family;
  n->ai.ai_socktype =
      hints && hints->ai_socktype ? hints->ai_socktype : SOCK_STREAM;
  n->ai.ai_protocol = hints ? hints->ai_protocol : 0;
  n->ai.ai_addr = (struct sockaddr *)&n->sa;
  if (family == AF_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *)&n->sa;

    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    memcpy(&in->sin_addr, addr, 4);
    n->ai.ai_addrlen = sizeof(*in);
  } else {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&n->sa;

    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    memcpy(&in6->sin6_addr, addr, 16);
    n->ai.ai_addrlen = sizeof(*in6);
  }
  **tail = &n->ai;
  *tail = &n->ai.ai_next;
  return 0;
}

/* Numeric address text into *tail; 1 when it was one. */
static int add_text(struct addrinfo ***tail, int want, const char *text,
                    unsigned port, const struct addrinfo *hints)
{
  unsigned char buf[16];

  if ((want == AF_UNSPEC || want == AF_INET) &&
      inet_pton(AF_INET, text, buf) == 1)
    return add_addr(tail, AF_INET, buf, port, hints) == 0;
  if ((want == AF_UNSPEC || want == AF_INET6) &&
      inet_pton(AF_INET6, text, buf) == 1)
    return add_addr(tail, AF_INET6, buf, port, hints) == 0;
  return 0;
}

static void from_hosts(struct addrinfo ***tail, int want, const char *node,
                       unsigned port, const struct addrinfo *hints)
{
  FILE *f = fopen("/etc/hosts", "re");
  char line[1024];

  if (f == NULL)
    return;
  while (fgets(line, sizeof(line), f) != NULL) {
    char *save = NULL, *addr, *name;

    line[strcspn(line, "#\n")] = 0;
    addr = strtok_r(line, " \t", &save);
    if (addr == NULL)
      continue;
    while ((name = strtok_r(NULL, " \t", &save)) != NULL) {
      if (strcasecmp(name, node) == 0) {
        add_text(tail, want, addr, port, hints);
        break;
      }
    }
  }
  fclose(f);
}

static void from_dns(struct addrinfo ***tail, int type, const char *node,
                     unsigned port, const struct addrinfo *hints)
{
  unsigned char answer[4096];
  ns_msg msg;
  ns_rr rr;
  int n = res_query(node, ns_c_in, type, answer, sizeof(answer)), i;

  if (n < 0 || ns_initparse(answer, n, &msg) < 0)
    return;
  for (i = 0; i < ns_msg_count(msg, ns_s_an); i++) {
    if (ns_parserr(&msg, ns_s_an, i, &rr) < 0 || (int)ns_rr_type(rr) != type)
      continue;
    if (type == ns_t_a && ns_rr_rdlen(rr) == 4)
      add_addr(tail, AF_INET, ns_rr_rdata(rr), port, hints);
    else if (type == ns_t_aaaa && ns_rr_rdlen(rr) == 16)
      add_addr(tail, AF_INET6, ns_rr_rdata(rr), port, hints);
  }
}

int __wrap_getaddrinfo(const char *node, const char *service,
                       const struct addrinfo *hints, struct addrinfo **res)
{
  int want = hints ? hints->ai_family : AF_UNSPEC;
  struct addrinfo *head = NULL, **tail = &head;
  unsigned long port = 0;
  char *end;

  *res = NULL;
  if (node == NULL)
    return EAI_NONAME;
  if (service != NULL) {
    port = strtoul(service, &end, 10);
    if (*service == 0 || *end != 0 || port > 65535)
      return EAI_SERVICE;
  }
  if (!add_text(&tail, want, node, (unsigned)port, hints)) {
    from_hosts(&tail, want, node, (unsigned)port, hints);
    if (head == NULL &&
        (hints == NULL || !(hints->ai_flags & AI_NUMERICHOST))) {
      if (want == AF_UNSPEC || want == AF_INET)
        from_dns(&tail, ns_t_a, node, (unsigned)port, hints);
      if (want == AF_UNSPEC || want == AF_INET6)
        from_dns(&tail, ns_t_aaaa, node, (unsigned)port, hints);
    }
  }
  if (head == NULL)
    return EAI_NONAME;
  *res = head;
  return 0;
}

void __wrap_freeaddrinfo(struct addrinfo *ai)
{
  while (ai != NULL) {
    struct addrinfo *next = ai->ai_next;

    free(ai); /* the first member of a struct ai_node */
    ai = next;
  }
}
