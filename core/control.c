/* The control socket and the metrics listener on the tunnel's loop: accepting clients,
 * their bounded buffers, the commands of the line protocol (ctlproto.h) and GET /metrics.
 * A client costs its own buffers and nothing else: reads are bounded by one line, a reply
 * waits in its buffer while nothing more is read from that client, and a client that stops
 * reading or never finishes a line is closed after MT_CONTROL_IDLE seconds. */
#include "control.h"

#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "capture.h"
#include "ctlproto.h"
#include "moontun/log.h"
#include "report.h"
#include "util.h"

struct client {
    struct mt_control *ctl;
    struct client *next;
    ev_io w;
    int fd;
    bool http;     /* the metrics listener's client: one request, then close */
    bool closing;  /* close once the reply is out */
    double active; /* last progress (a byte read or written) */
    char in[MT_CTL_LINE_MAX + 1];
    size_t inlen;
    struct mt_buf out;
    size_t sent;
};

struct mt_control {
    struct mt_tunnel *t;
    double started;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int ufd, hfd; /* the Unix and HTTP listeners (-1: none) */
    ev_io uw, hw;
    ev_timer sweep_w;
    struct client *clients;
    int nclients;
    double full_logged;
};

void mt_control_netns_tag(char *buf, size_t bufsz)
{
    struct stat self, st;
    buf[0] = '\0';
    /* A namespace made by `ip netns add NAME` is bind-mounted at /run/netns/NAME: find ours
     * there by its inode (the host's namespace, or an unnamed one, is not). */
    DIR *d = stat("/proc/self/ns/net", &self) == 0 ? opendir("/run/netns") : NULL;
    struct dirent *e;
    char path[300];
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/run/netns/%s", e->d_name);
        if (stat(path, &st) == 0 && st.st_ino == self.st_ino && st.st_dev == self.st_dev) {
            snprintf(buf, bufsz, "@%s", e->d_name);
            break;
        }
    }
    if (d)
        closedir(d);
}

void mt_control_default_path(const char *ifname, char *buf, size_t bufsz)
{
    char tag[32];
    mt_control_netns_tag(tag, sizeof tag);
    snprintf(buf, bufsz, "%s/%s%s.sock", MT_CONTROL_DIR, ifname, tag);
}

static void client_close(struct client *c)
{
    struct mt_control *ctl = c->ctl;
    for (struct client **pp = &ctl->clients; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    ev_io_stop(ctl->t->loop, &c->w);
    if (c->fd >= 0) /* -1: handed over to a capture */
        close(c->fd);
    mt_buf_free(&c->out);
    free(c);
    ctl->nclients--;
}

/* Watch for reading while no reply waits, for writing while one does. */
static void client_watch(struct client *c)
{
    int want = c->sent < c->out.len ? EV_WRITE : EV_READ;
    if ((c->w.events & (EV_READ | EV_WRITE)) == want && ev_is_active(&c->w))
        return;
    ev_io_stop(c->ctl->t->loop, &c->w);
    ev_io_set(&c->w, c->fd, want);
    ev_io_start(c->ctl->t->loop, &c->w);
}

static void reply_error(struct client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void reply_error(struct client *c, const char *fmt, ...)
{
    va_list ap;
    mt_buf_printf(&c->out, "error ");
    va_start(ap, fmt);
    mt_buf_vprintf(&c->out, fmt, ap);
    va_end(ap);
    mt_buf_printf(&c->out, "\n");
}

/* "ok LEN\n" and the body. */
static void reply_ok(struct client *c, const struct mt_buf *body)
{
    if (body->overflow) {
        reply_error(c, "reply longer than %u bytes", MT_CTL_REPLY_MAX);
        return;
    }
    mt_buf_printf(&c->out, "ok %zu\n", body->len);
    mt_buf_add(&c->out, body->data ? body->data : "", body->len);
}

static struct mt_tpeer *find_peer(struct mt_tunnel *t, const char *which)
{
    for (struct mt_tpeer *p = t->peers; p; p = p->next)
        if (strcmp(p->pub.addr, which) == 0 || strcmp(p->pub.name, which) == 0)
            return p;
    char *end;
    unsigned long id = strtoul(which, &end, 10);
    for (struct mt_tpeer *p = t->peers; p && !*end; p = p->next)
        if (p->pub.id == id)
            return p;
    return NULL;
}

/* call NAME ARGS...: a command a script registered with mt.command. */
static void script_command(struct client *c, char **w, int n)
{
    char err[512], *reply;
    size_t len;
    if (mt_scripts_command(c->ctl->t->scripts, w[0], n - 1, w + 1, &reply, &len, err, sizeof err) <
        0) {
        reply_error(c, "%s", err);
        return;
    }
    struct mt_buf body;
    mt_buf_init(&body, MT_CTL_REPLY_MAX);
    mt_buf_add(&body, reply ? reply : "", len);
    if (len > 0 && reply[len - 1] != '\n')
        mt_buf_add(&body, "\n", 1);
    reply_ok(c, &body);
    mt_buf_free(&body);
    free(reply);
}

static void command(struct client *c, char **w, int n)
{
    struct mt_control *ctl = c->ctl;
    struct mt_tunnel *t = ctl->t;
    struct mt_buf body;
    char err[512];

    mt_buf_init(&body, MT_CTL_REPLY_MAX);
    if (n == 1 && strcmp(w[0], "show") == 0) {
        mt_report_show(t, ctl->started, &body);
        reply_ok(c, &body);
    } else if (n == 2 && strcmp(w[0], "show") == 0 && strcmp(w[1], "json") == 0) {
        mt_report_json(t, ctl->started, &body);
        reply_ok(c, &body);
    } else if (n == 1 && strcmp(w[0], "metrics") == 0) {
        mt_report_metrics(t, ctl->started, &body);
        reply_ok(c, &body);
    } else if (n == 1 && strcmp(w[0], "reload") == 0) {
        err[0] = '\0';
        if (mt__tunnel_reload(t, "control socket", err, sizeof err) < 0) {
            reply_error(c, "reload failed, the running scripts stay: %s", err);
        } else {
            mt_buf_printf(&body, "%s\n", err[0] ? err : "scripts reloaded");
            reply_ok(c, &body);
        }
    } else if (n == 3 && strcmp(w[0], "peer") == 0 && strcmp(w[2], "kill") == 0) {
        struct mt_tpeer *p = find_peer(t, w[1]);
        if (!p) {
            reply_error(c, "no peer %s", w[1]);
        } else if (!t->ops->kill) {
            reply_error(c, "the %s transport cannot end a peer", t->ops->name);
        } else {
            char addr[MT_PEER_ADDRSTRLEN];
            snprintf(addr, sizeof addr, "%s", p->pub.addr);
            if (t->ops->kill(p, "killed from the control socket") < 0)
                reply_error(c, "%s is this client's server: it stays", addr);
            else {
                mt_buf_printf(&body, "peer %s killed\n", addr);
                reply_ok(c, &body);
            }
        }
    } else if (n >= 1 && strcmp(w[0], "capture") == 0) {
        /* The capture takes the socket over and streams from it; this client is done. */
        if (mt__capture_start(t, c->fd, w + 1, n - 1, err, sizeof err) < 0)
            reply_error(c, "%s", err);
        else
            c->fd = -1;
    } else if (n >= 2 && strcmp(w[0], "call") == 0) {
        script_command(c, w + 1, n - 1);
    } else if (n == 1 && strcmp(w[0], "version") == 0) {
        mt_buf_printf(&body, "moontun %s\n", MOONTUN_VERSION);
        reply_ok(c, &body);
    } else if (n == 1 && strcmp(w[0], "help") == 0) {
        mt_buf_printf(
            &body, "show\nshow json\nmetrics\nreload\npeer ADDR|NAME|ID kill\n"
                   "capture POINTS VERDICTS COUNT [FILTER]\ncall NAME [ARGS...]\nversion\nhelp\n");
        reply_ok(c, &body);
    } else {
        reply_error(c, "unknown command '%s' (try help)", n ? w[0] : "");
    }
    mt_buf_free(&body);
}

/* One HTTP request in c->in (complete headers). Only GET /metrics. */
static void http_request(struct client *c)
{
    char *sp = strchr(c->in, ' ');
    const char *status = "200 OK";
    struct mt_buf body;
    mt_buf_init(&body, MT_CTL_REPLY_MAX);
    if (!sp || strncmp(c->in, "GET ", 4) != 0) {
        status = "405 Method Not Allowed";
        mt_buf_printf(&body, "only GET /metrics\n");
    } else if (strncmp(sp + 1, "/metrics ", 9) != 0 && strncmp(sp + 1, "/metrics?", 9) != 0) {
        status = "404 Not Found";
        mt_buf_printf(&body, "only GET /metrics\n");
    } else {
        mt_report_metrics(c->ctl->t, c->ctl->started, &body);
    }
    mt_buf_printf(&c->out,
                  "HTTP/1.1 %s\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                  "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                  status, body.len);
    mt_buf_add(&c->out, body.data ? body.data : "", body.len);
    mt_buf_free(&body);
    c->closing = true;
}

/* Acts on every complete line in c->in; stops at the first reply (the next line waits until
 * that reply is out, so one client holds at most one reply). */
static void client_process(struct client *c)
{
    while (c->sent >= c->out.len && !c->closing) {
        mt_buf_free(&c->out);
        mt_buf_init(&c->out, MT_CTL_REPLY_MAX + 64);
        c->sent = 0;
        if (c->http) {
            c->in[c->inlen] = '\0';
            if (strstr(c->in, "\r\n\r\n") || strstr(c->in, "\n\n"))
                http_request(c);
            else if (c->inlen == MT_CTL_LINE_MAX) {
                mt_buf_printf(&c->out, "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                                       "Connection: close\r\nContent-Length: 0\r\n\r\n");
                c->closing = true;
            }
            return;
        }
        char *nl = memchr(c->in, '\n', c->inlen);
        if (!nl) {
            if (c->inlen == MT_CTL_LINE_MAX) { /* a 10 MB line: refused, not buffered */
                reply_error(c, "line longer than %d bytes", MT_CTL_LINE_MAX);
                c->closing = true;
            }
            return;
        }
        size_t len = (size_t)(nl - c->in);
        char *words[MT_CTL_MAX_WORDS];
        int n = mt_ctl_split(c->in, len, words, MT_CTL_MAX_WORDS);
        if (n == -EINVAL)
            reply_error(c, "not a command: bytes other than printable ASCII");
        else if (n < 0)
            reply_error(c, "more than %d words", MT_CTL_MAX_WORDS);
        else if (n > 0)
            command(c, words, n);
        if (c->fd < 0) /* a capture has it now */
            return;
        /* words point into c->in: move the rest only after the command ran */
        memmove(c->in, nl + 1, c->inlen - len - 1);
        c->inlen -= len + 1;
    }
}

static void client_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct client *c = mt_container_of(w, struct client, w);
    if (revents & EV_WRITE) {
        ssize_t n =
            send(c->fd, c->out.data + c->sent, c->out.len - c->sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) { /* gone mid-reply: its reply is dropped with it */
            client_close(c);
            return;
        }
        c->sent += (size_t)n;
        c->active = ev_now(loop);
        if (c->sent < c->out.len)
            return;
        if (c->closing) {
            client_close(c);
            return;
        }
    }
    if (revents & EV_READ) {
        ssize_t n = recv(c->fd, c->in + c->inlen, MT_CTL_LINE_MAX - c->inlen, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) { /* closed, perhaps mid-line: nothing was started for it */
            client_close(c);
            return;
        }
        c->inlen += (size_t)n;
        c->active = ev_now(loop);
    }
    client_process(c);
    if (c->fd < 0) {
        client_close(c);
        return;
    }
    client_watch(c);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct mt_control *ctl = w->data;
    bool http = w == &ctl->hw;
    for (int i = 0; i < 16; i++) { /* a few per wake-up: the tunnel's packets come first */
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && ev_now(loop) - ctl->full_logged > 5) {
                ctl->full_logged = ev_now(loop);
                mt_warn("control: accept: %s", strerror(errno));
            }
            return;
        }
        struct client *c = NULL;
        if (ctl->nclients < MT_CONTROL_MAX_CLIENTS)
            c = calloc(1, sizeof *c);
        if (!c) {
            static const char busy[] = "error too many control clients\n";
            if (!http)
                (void)!send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            close(fd);
            continue;
        }
        c->ctl = ctl;
        c->fd = fd;
        c->http = http;
        c->active = ev_now(loop);
        mt_buf_init(&c->out, MT_CTL_REPLY_MAX + 64);
        ev_io_init(&c->w, client_cb, fd, EV_READ);
        ev_io_start(loop, &c->w);
        c->next = ctl->clients;
        ctl->clients = c;
        ctl->nclients++;
    }
}

static void sweep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mt_control *ctl = w->data;
    double now = ev_now(loop);
    struct client *next;
    for (struct client *c = ctl->clients; c; c = next) {
        next = c->next;
        /* Silent, stalled mid-line or not reading its reply: its slot goes to others. */
        if (now - c->active > MT_CONTROL_IDLE)
            client_close(c);
    }
}

/* A socket already at path: another instance's (refused) or a stale one (removed). */
static int clear_path(const char *path, char *err, size_t errsz)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errsz, "control socket %s: a file that is not a socket is in the way", path);
        return -EEXIST;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    memcpy(sun.sun_path, path, strlen(path) + 1);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0) {
        close(fd);
        snprintf(err, errsz, "control socket %s is in use by a running moontun (--control PATH)",
                 path);
        return -EADDRINUSE;
    }
    if (fd >= 0)
        close(fd);
    unlink(path);
    return 0;
}

static int open_unix(struct mt_control *ctl, const struct passwd *pw, char *err, size_t errsz)
{
    const struct mt_config *cfg = ctl->t->cfg;
    char path[256];
    if (cfg->control[0])
        snprintf(path, sizeof path, "%s", cfg->control);
    else
        mt_control_default_path(ctl->t->ifname, path, sizeof path);
    if (strlen(path) >= sizeof ctl->path) {
        snprintf(err, errsz, "control socket path %s is longer than %zu bytes", path,
                 sizeof ctl->path - 1);
        return -ENAMETOOLONG;
    }
    if (!cfg->control[0] && mkdir(MT_CONTROL_DIR, 0755) == 0 && pw &&
        chown(MT_CONTROL_DIR, pw->pw_uid, pw->pw_gid) < 0) /* so --user can remove it at exit */
        mt_warn("control: cannot give %s to %s: %s", MT_CONTROL_DIR, pw->pw_name, strerror(errno));
    int rc = clear_path(path, err, errsz);
    if (rc < 0) {
        if (!err[0])
            snprintf(err, errsz, "control socket %s: %s", path, strerror(-rc));
        return rc;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    memcpy(sun.sun_path, path, strlen(path) + 1);
    mode_t old = umask(0177); /* 0600 from the start: no moment where others may connect */
    rc = fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0 ? -errno : 0;
    umask(old);
    if (rc == 0 && pw && chown(path, pw->pw_uid, pw->pw_gid) < 0)
        rc = -errno;
    if (rc == 0 && (chmod(path, 0600) < 0 || listen(fd, 64) < 0))
        rc = -errno;
    if (rc < 0) {
        snprintf(err, errsz, "control socket %s: %s", path, strerror(-rc));
        if (fd >= 0)
            close(fd);
        return rc;
    }
    memcpy(ctl->path, path, strlen(path) + 1);
    ctl->ufd = fd;
    return 0;
}

static int open_http(struct mt_control *ctl, char *err, size_t errsz)
{
    const char *spec = ctl->t->cfg->metrics_listen;
    struct sockaddr_storage ss;
    unsigned len;
    if (mt_ctl_parse_hostport(spec, &ss, &len) < 0) {
        snprintf(err, errsz, "--metrics-listen: '%s' is not ADDR:PORT", spec);
        return -EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 64) < 0) {
        int e = errno;
        snprintf(err, errsz, "--metrics-listen %s: %s", spec, strerror(e));
        if (fd >= 0)
            close(fd);
        return -e;
    }
    ctl->hfd = fd;
    return 0;
}

int mt_control_open(struct mt_control **out, struct mt_tunnel *t, char *err, size_t errsz)
{
    *out = NULL;
    err[0] = '\0';
    struct mt_control *ctl = calloc(1, sizeof *ctl);
    if (!ctl) {
        snprintf(err, errsz, "out of memory");
        return -ENOMEM;
    }
    ctl->t = t;
    ctl->ufd = ctl->hfd = -1;
    ctl->started = ev_now(t->loop);
    const struct passwd *pw = t->cfg->user[0] ? getpwnam(t->cfg->user) : NULL;
    int rc = open_unix(ctl, pw, err, errsz);
    if (rc == 0 && t->cfg->metrics_listen[0])
        rc = open_http(ctl, err, errsz);
    if (rc < 0) {
        mt_control_close(ctl);
        return rc;
    }
    ev_io_init(&ctl->uw, accept_cb, ctl->ufd, EV_READ);
    ctl->uw.data = ctl;
    ev_io_start(t->loop, &ctl->uw);
    if (ctl->hfd >= 0) {
        ev_io_init(&ctl->hw, accept_cb, ctl->hfd, EV_READ);
        ctl->hw.data = ctl;
        ev_io_start(t->loop, &ctl->hw);
        mt_info("metrics at http://%s/metrics", t->cfg->metrics_listen);
    }
    ev_timer_init(&ctl->sweep_w, sweep_cb, 1.0, 1.0);
    ctl->sweep_w.data = ctl;
    ev_timer_start(t->loop, &ctl->sweep_w);
    mt_debug("control socket %s", ctl->path);
    *out = ctl;
    return 0;
}

void mt_control_close(struct mt_control *ctl)
{
    if (!ctl)
        return;
    struct ev_loop *loop = ctl->t->loop;
    while (ctl->clients)
        client_close(ctl->clients);
    mt__capture_close_all(ctl->t);
    ev_timer_stop(loop, &ctl->sweep_w);
    if (ctl->ufd >= 0) {
        ev_io_stop(loop, &ctl->uw);
        close(ctl->ufd);
        if (unlink(ctl->path) < 0)
            mt_warn("control: cannot remove %s: %s", ctl->path, strerror(errno));
    }
    if (ctl->hfd >= 0) {
        ev_io_stop(loop, &ctl->hw);
        close(ctl->hfd);
    }
    free(ctl);
}
