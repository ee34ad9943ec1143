/* The command line: parsing, validation and --help. Everything that can
 * be checked without touching the system is checked here, so a bad flag exits before any
 * device or socket exists. */
#include "moontun/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctlproto.h"
#include "moontun/log.h"
#include "wg/config.h"

#define MT_DEFAULT_PORT      55555 /* as simpletun */
#define MT_DEFAULT_MTU       1400
#define MT_MIN_MTU           68    /* RFC 791: every IPv4 host must take 68 bytes */
#define MT_MAX_MTU           65000 /* leaves room for headers under the 64 KiB frame limit */
#define MT_IPV6_MIN_MTU      1280  /* RFC 8200: an IPv6 link carries at least 1280 bytes */
#define MT_DEFAULT_KEEPALIVE 10.0
#define MT_DEFAULT_IDLE      60.0

enum {
    OPT_TCP = 1000,
    OPT_UDP,
    OPT_ADDR,
    OPT_MTU,
    OPT_ON_ERROR,
    OPT_LUA_BUDGET,
    OPT_LUA_MEM,
    OPT_LUA_TIME,
    OPT_USER,
    OPT_ALLOW,
    OPT_MAX_PEERS,
    OPT_KEEPALIVE,
    OPT_IDLE,
    OPT_NO_OFFLOAD,
    OPT_OUTER_DF,
    OPT_UDP_OFFLOAD,
    OPT_WG,
    OPT_CONTROL,
    OPT_METRICS_LISTEN,
};

static const struct option long_options[] = {
    {"iface", required_argument, NULL, 'i'},
    {"tun", no_argument, NULL, 'u'},
    {"tap", no_argument, NULL, 'a'},
    {"server", no_argument, NULL, 's'},
    {"client", required_argument, NULL, 'c'},
    {"port", required_argument, NULL, 'p'},
    {"listen", required_argument, NULL, 'l'},
    {"tcp", no_argument, NULL, OPT_TCP},
    {"udp", no_argument, NULL, OPT_UDP},
    {"wg", required_argument, NULL, OPT_WG},
    {"script", required_argument, NULL, 'S'},
    {"addr", required_argument, NULL, OPT_ADDR},
    {"mtu", required_argument, NULL, OPT_MTU},
    {"on-error", required_argument, NULL, OPT_ON_ERROR},
    {"lua-budget", required_argument, NULL, OPT_LUA_BUDGET},
    {"lua-mem", required_argument, NULL, OPT_LUA_MEM},
    {"lua-time", required_argument, NULL, OPT_LUA_TIME},
    {"user", required_argument, NULL, OPT_USER},
    {"allow", required_argument, NULL, OPT_ALLOW},
    {"max-peers", required_argument, NULL, OPT_MAX_PEERS},
    {"keepalive", required_argument, NULL, OPT_KEEPALIVE},
    {"idle-timeout", required_argument, NULL, OPT_IDLE},
    {"no-offload", no_argument, NULL, OPT_NO_OFFLOAD},
    {"outer-df", required_argument, NULL, OPT_OUTER_DF},
    {"udp-offload", required_argument, NULL, OPT_UDP_OFFLOAD},
    {"control", required_argument, NULL, OPT_CONTROL},
    {"metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN},
    {"debug", no_argument, NULL, 'd'},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

void mt_config_usage(FILE *out)
{
    fputs("Usage: moontun [-i IFNAME] [-u|-a] (-s | -c HOST) [-p PORT] [--udp|--tcp]\n"
          "               [-S \"SCRIPT [key=value ...]\"]... [options]\n"
          "       moontun [-i IFNAME] --wg FILE [-S ...] [options]\n"
          "A tun/tap tunnel over TCP, UDP or WireGuard whose data path is programmable in Lua.\n"
          "\n"
          "  -i, --iface NAME      device name (default: the kernel picks tunN/tapN)\n"
          "  -u, --tun             tun mode, IP packets (default)\n"
          "  -a, --tap             tap mode, Ethernet frames\n"
          "  -s, --server          listen for peers\n"
          "  -c, --client HOST     connect to HOST (name, IPv4 or IPv6 address)\n"
          "  -p, --port PORT       port to listen on or connect to (default 55555)\n"
          "  -l, --listen ADDR     bind address (default: any, IPv6 and IPv4)\n"
          "      --tcp | --udp     transport (default tcp, simpletun-compatible framing)\n"
          "      --wg FILE         WireGuard: keys, ListenPort and peers from a wg(8) file\n"
          "                        (peer to peer: no -s/-c; its Address and MTU apply\n"
          "                        unless --addr/--mtu are given; -p when no ListenPort)\n"
          "  -S, --script \"FILE [key=value ...]\"\n"
          "                        Lua script and its settings; repeat to chain in order\n"
          "      --addr CIDR       assign this address to the device and bring it up\n"
          "                        (repeatable: IPv4 and IPv6)\n"
          "      --mtu N           device MTU (default 1400)\n"
          "      --on-error pass|drop\n"
          "                        verdict when a script fails (default drop; per script:\n"
          "                        -S \"FILE on_error=pass\")\n"
          "      --lua-budget N    instructions per handler call (default 0: none, the time\n"
          "                        bound alone; at least 1000)\n"
          "      --lua-mem MB      Lua memory cap (default 64)\n"
          "      --lua-time MS     wall-clock bound per handler call or timer (default 50)\n"
          "      --user NAME       drop root after setup\n"
          "      --allow PREFIX    who may become a peer (repeatable; default anyone)\n"
          "      --max-peers N     most peers a server serves at once (default 256)\n"
          "      --keepalive SEC   UDP: keepalive interval (default 10)\n"
          "      --idle-timeout SEC\n"
          "                        UDP: forget a silent peer after this long (default 60)\n"
          "      --no-offload      do not read 64 KiB super-packets from the device\n"
          "                        nor offer them to moontun peers\n"
          "      --outer-df on|off UDP over IPv4: set DF on outer datagrams (default off:\n"
          "                        routers may fragment them; no path-MTU black hole)\n"
          "      --udp-offload auto|off\n"
          "                        UDP: kernel GSO/GRO on the outer socket where the kernel\n"
          "                        has them (auto, default), or one syscall slot per datagram\n"
          "      --config FILE     read these long options from FILE, one a line (flags given\n"
          "                        here override it)\n"
          "      --control PATH    control socket (default /run/moontun/IFNAME.sock)\n"
          "      --metrics-listen ADDR:PORT\n"
          "                        serve Prometheus metrics at GET /metrics (default off)\n"
          "  -d, --debug           trace every packet: its fate, who decided, what changed\n"
          "  -q, --quiet           log errors only\n"
          "  -h, --help            this text\n"
          "  -V, --version         print the version\n",
          out);
}

static int fail(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errsz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* An option that is yes or "off": true for yes, false for off, -1 for anything else. */
static int parse_switch(const char *text, const char *yes, bool *out)
{
    if (strcmp(text, yes) != 0 && strcmp(text, "off") != 0)
        return -1;
    *out = strcmp(text, yes) == 0;
    return 0;
}

/* Parses a whole decimal number in [min, max]; trailing junk, overflow or emptiness fail. */
static int parse_long(const char *text, long min, long max, long *out)
{
    char *end;
    if (!(*text >= '0' && *text <= '9') && *text != '-')
        return -EINVAL; /* strtol would skip blanks and take '+' */
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end != '\0' || v < min || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_seconds(const char *text, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end != '\0' || !(v >= min && v <= max))
        return -EINVAL;
    *out = v;
    return 0;
}

/* Splits "FILE key=value ..." in place. Settings are separated by blanks; a value cannot hold
 * a blank (paths and prefixes never need one). */
static int parse_script_spec(const char *arg, struct mt_script_spec *spec, char *err, size_t errsz)
{
    memset(spec, 0, sizeof(*spec));
    spec->text = strdup(arg);
    if (!spec->text)
        return -ENOMEM;
    char *save = NULL;
    char *tok = strtok_r(spec->text, " \t", &save);
    if (!tok)
        return fail(err, errsz, "-S: empty script argument");
    spec->path = tok;
    while ((tok = strtok_r(NULL, " \t", &save))) {
        char *eq = strchr(tok, '=');
        if (!eq || eq == tok)
            return fail(err, errsz, "-S %s: setting '%s' is not key=value", spec->path, tok);
        if (spec->nargs == MT_MAX_ARGS)
            return fail(err, errsz, "-S %s: more than %d settings", spec->path, MT_MAX_ARGS);
        *eq = '\0';
        spec->keys[spec->nargs] = tok;
        spec->values[spec->nargs] = eq + 1;
        spec->nargs++;
    }
    if (access(spec->path, R_OK) != 0)
        return fail(err, errsz, "-S: cannot read script '%s': %s", spec->path, strerror(errno));
    return 0;
}

static int copy_string(char *dst, size_t dstsz, const char *src)
{
    size_t n = strlen(src);
    if (n >= dstsz)
        return -ENAMETOOLONG;
    memcpy(dst, src, n + 1);
    return 0;
}

/* Below 1280 bytes the kernel takes IPv6 off the device and refuses an IPv6 address with a
 * bare EINVAL, after the device exists: say which address and why, before anything is made. */
static int check_ipv6_mtu(const struct mt_config *cfg, char *err, size_t errsz)
{
    for (int i = 0; i < cfg->naddrs; i++) {
        const struct mt_prefix *p = &cfg->addrs[i];
        if (p->addr.kind != MT_ADDR_IP6 || cfg->mtu >= MT_IPV6_MIN_MTU)
            continue;
        char text[MT_PREFIX_STRLEN];
        return fail(err, errsz, "--addr %s is IPv6, which needs an MTU of at least %d; --mtu is %d",
                    mt_prefix_str(p, text, sizeof(text)), MT_IPV6_MIN_MTU, cfg->mtu);
    }
    return MT_CONFIG_RUN;
}

static void wg_note(void *ctx, int line, const char *msg)
{
    if (line > 0)
        mt_info("%s: line %d: %s", (const char *)ctx, line, msg);
    else
        mt_info("%s: %s", (const char *)ctx, msg);
}

/* --wg FILE: the transport, and what the file says of the device when the command line did
 * not (wg-quick's Address and MTU), and the port (ListenPort; else -p; else any, as wg). */
static int wg_options(struct mt_config *cfg, const char *path, bool role_client, bool port_set,
                      bool mtu_set, char *err, size_t errsz)
{
    if (role_client)
        return fail(err, errsz,
                    "--wg and -c exclude each other: WireGuard peers and their "
                    "endpoints come from the file");
    if (cfg->transport != MT_TRANSPORT_TCP || cfg->tap)
        return fail(err, errsz, "--wg carries IP packets over its own UDP: no --tcp, --udp or -a");
    cfg->wg = calloc(1, sizeof(*cfg->wg));
    if (!cfg->wg)
        return fail(err, errsz, "out of memory");
    char why[512];
    if (mt_wg_config_load(cfg->wg, path, wg_note, (void *)path, why, sizeof(why)) < 0)
        return fail(err, errsz, "--wg: %s", why);
    if (!cfg->wg->has_priv)
        return fail(err, errsz, "--wg: %s: [Interface] has no PrivateKey", path);
    cfg->transport = MT_TRANSPORT_WG;
    if (cfg->wg->has_listen_port)
        cfg->port = cfg->wg->listen_port;
    else if (!port_set)
        cfg->port = 0; /* the kernel picks: an end that only initiates */
    if (!mtu_set && cfg->wg->mtu) {
        if (cfg->wg->mtu > MT_MAX_MTU)
            return fail(err, errsz, "--wg: %s: MTU %u is above %d", path, cfg->wg->mtu, MT_MAX_MTU);
        cfg->mtu = (int)cfg->wg->mtu;
    }
    for (size_t i = 0; cfg->naddrs == 0 && i < cfg->wg->n_addresses; i++) {
        const struct mt_wg_prefix *a = &cfg->wg->addresses[i];
        if (i == MT_MAX_ADDRS)
            return fail(err, errsz, "--wg: %s: at most %d Address prefixes", path, MT_MAX_ADDRS);
        struct mt_prefix *d = &cfg->addrs[i];
        memset(d, 0, sizeof(*d));
        d->addr.kind = a->family == 4 ? MT_ADDR_IP4 : MT_ADDR_IP6;
        memcpy(d->addr.b, a->addr, a->family == 4 ? 4 : 16);
        d->len = a->bits;
        if (i + 1 == cfg->wg->n_addresses)
            cfg->naddrs = (int)cfg->wg->n_addresses;
    }
    return 0;
}

static void set_defaults(struct mt_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->port = MT_DEFAULT_PORT;
    cfg->mtu = MT_DEFAULT_MTU;
    cfg->transport = MT_TRANSPORT_TCP;
    cfg->on_error = MT_ON_ERROR_DROP;
    cfg->lua_budget = MT_DEFAULT_LUA_BUDGET;
    cfg->lua_mem_mb = MT_DEFAULT_LUA_MEM;
    cfg->lua_time_ms = MT_DEFAULT_LUA_TIME;
    cfg->max_peers = MT_DEFAULT_MAX_PEERS;
    cfg->log_level = MT_LOG_INFO;
    cfg->keepalive = MT_DEFAULT_KEEPALIVE;
    cfg->idle_timeout = MT_DEFAULT_IDLE;
}

int mt_config_parse(struct mt_config *cfg, int argc, char **argv, char *err, size_t errsz)
{
    set_defaults(cfg);
    bool role_client = false, role_server = false, port_set = false, mtu_set = false;
    const char *wg_path = NULL;
    long v;
    bool on;
    int rc;

    optind = 0; /* 0, not 1: also forgets a half-read "-abc" cluster of an earlier call */
    opterr = 0; /* our own one-line messages instead of getopt's */
    for (;;) {
        int long_index = -1;
        int opt = getopt_long(argc, argv, ":i:uasc:p:l:S:dqhV", long_options, &long_index);
        if (opt == -1)
            break;
        switch (opt) {
        case 'i':
            if (copy_string(cfg->ifname, sizeof(cfg->ifname), optarg) < 0 || !*optarg)
                return fail(err, errsz, "-i: interface name '%s' must be 1-%d characters", optarg,
                            IFNAMSIZ - 1);
            break;
        case 'u':
            cfg->tap = false;
            break;
        case 'a':
            cfg->tap = true;
            break;
        case 's':
            role_server = true;
            break;
        case 'c':
            role_client = true;
            if (copy_string(cfg->host, sizeof(cfg->host), optarg) < 0 || !*optarg)
                return fail(err, errsz, "-c: '%s' is not a host name or address", optarg);
            break;
        case 'p':
            if (parse_long(optarg, 1, 65535, &v) < 0)
                return fail(err, errsz, "-p: '%s' is not a port (1-65535)", optarg);
            cfg->port = (uint16_t)v;
            port_set = true;
            break;
        case 'l':
            if (copy_string(cfg->listen, sizeof(cfg->listen), optarg) < 0 || !*optarg)
                return fail(err, errsz, "-l: '%s' is not an address", optarg);
            break;
        case OPT_TCP:
            cfg->transport = MT_TRANSPORT_TCP;
            break;
        case OPT_UDP:
            cfg->transport = MT_TRANSPORT_UDP;
            break;
        case OPT_WG:
            if (!*optarg)
                return fail(err, errsz, "--wg: a wg(8) configuration file is needed");
            wg_path = optarg;
            break;
        case 'S':
            if (cfg->nscripts == MT_MAX_SCRIPTS)
                return fail(err, errsz, "-S: at most %d scripts", MT_MAX_SCRIPTS);
            rc = parse_script_spec(optarg, &cfg->scripts[cfg->nscripts++], err, errsz);
            if (rc < 0)
                return rc;
            break;
        case OPT_ADDR:
            if (cfg->naddrs == MT_MAX_ADDRS)
                return fail(err, errsz, "--addr: at most %d addresses", MT_MAX_ADDRS);
            if (mt_prefix_parse(optarg, &cfg->addrs[cfg->naddrs]) < 0)
                return fail(err, errsz,
                            "--addr: '%s' is not an address/prefix (e.g. 10.0.0.1/24, "
                            "fd00::1/64)",
                            optarg);
            cfg->naddrs++;
            break;
        case OPT_MTU:
            if (parse_long(optarg, MT_MIN_MTU, MT_MAX_MTU, &v) < 0)
                return fail(err, errsz, "--mtu: '%s' is out of range (%d-%d)", optarg, MT_MIN_MTU,
                            MT_MAX_MTU);
            cfg->mtu = (int)v;
            mtu_set = true;
            break;
        case OPT_ON_ERROR:
            if (strcmp(optarg, "drop") == 0)
                cfg->on_error = MT_ON_ERROR_DROP;
            else if (strcmp(optarg, "pass") == 0)
                cfg->on_error = MT_ON_ERROR_PASS;
            else
                return fail(err, errsz, "--on-error: '%s' is neither pass nor drop", optarg);
            break;
        case OPT_LUA_BUDGET:
            if (parse_long(optarg, 0, LONG_MAX, &v) < 0 || (v > 0 && v < 1000))
                return fail(err, errsz,
                            "--lua-budget: '%s' is neither 0 (none) nor a count >= 1000", optarg);
            cfg->lua_budget = v;
            break;
        case OPT_LUA_MEM:
            if (parse_long(optarg, 1, 1 << 20, &v) < 0)
                return fail(err, errsz, "--lua-mem: '%s' is not a size in MB (1-1048576)", optarg);
            cfg->lua_mem_mb = v;
            break;
        case OPT_LUA_TIME:
            /* Below 1 ms the watchdog's tick would be the bound; above 10 s the loop's own
             * stall watchdog would end the process first. */
            if (parse_long(optarg, 1, 10000, &v) < 0)
                return fail(err, errsz, "--lua-time: '%s' is not a time in ms (1-10000)", optarg);
            cfg->lua_time_ms = v;
            break;
        case OPT_USER:
            if (copy_string(cfg->user, sizeof(cfg->user), optarg) < 0 || !getpwnam(optarg))
                return fail(err, errsz, "--user: no such user '%s'", optarg);
            break;
        case OPT_ALLOW:
            if (cfg->nallow == MT_MAX_ALLOW)
                return fail(err, errsz, "--allow: at most %d prefixes", MT_MAX_ALLOW);
            if (mt_prefix_parse(optarg, &cfg->allow[cfg->nallow]) < 0)
                return fail(err, errsz, "--allow: '%s' is not an address/prefix", optarg);
            cfg->nallow++;
            break;
        case OPT_MAX_PEERS:
            if (parse_long(optarg, 1, 65536, &v) < 0)
                return fail(err, errsz, "--max-peers: '%s' is not a count (1-65536)", optarg);
            cfg->max_peers = (int)v;
            break;
        case OPT_KEEPALIVE:
            if (parse_seconds(optarg, 0.1, 3600, &cfg->keepalive) < 0)
                return fail(err, errsz, "--keepalive: '%s' is not seconds (0.1-3600)", optarg);
            break;
        case OPT_IDLE:
            if (parse_seconds(optarg, 0.5, 86400, &cfg->idle_timeout) < 0)
                return fail(err, errsz, "--idle-timeout: '%s' is not seconds (0.5-86400)", optarg);
            break;
        case OPT_NO_OFFLOAD:
            cfg->no_offload = true;
            break;
        case OPT_OUTER_DF:
            if (parse_switch(optarg, "on", &cfg->outer_df) < 0)
                return fail(err, errsz, "--outer-df: '%s' is neither on nor off", optarg);
            break;
        case OPT_UDP_OFFLOAD:
            if (parse_switch(optarg, "auto", &on) < 0)
                return fail(err, errsz, "--udp-offload: '%s' is neither auto nor off", optarg);
            cfg->no_udp_offload = !on;
            break;
        case OPT_CONTROL: /* a Unix socket path: sun_path holds 107 bytes and a NUL */
            if (!*optarg || copy_string(cfg->control, sizeof(cfg->control), optarg) < 0)
                return fail(err, errsz, "--control: path must be 1-%zu bytes",
                            sizeof(cfg->control) - 1);
            break;
        case OPT_METRICS_LISTEN:
            if (mt_ctl_parse_hostport(optarg, NULL, NULL) < 0 ||
                copy_string(cfg->metrics_listen, sizeof(cfg->metrics_listen), optarg) < 0)
                return fail(err, errsz,
                            "--metrics-listen: '%s' is not ADDR:PORT (127.0.0.1:9586, [::1]:9586)",
                            optarg);
            break;
        case 'd':
            cfg->log_level = MT_LOG_DEBUG;
            break;
        case 'q':
            cfg->log_level = MT_LOG_ERROR;
            break;
        case 'h':
            mt_config_usage(stdout);
            return MT_CONFIG_EXIT;
        case 'V':
            printf("moontun %s\n", MOONTUN_VERSION);
            return MT_CONFIG_EXIT;
        case ':':
            return fail(err, errsz, "option '%s' needs a value (see --help)", argv[optind - 1]);
        default:
            if (optopt)
                return fail(err, errsz, "unknown option '-%c' (see --help)", optopt);
            return fail(err, errsz, "unknown option '%s' (see --help)", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return fail(err, errsz, "unexpected argument '%s' (see --help)", argv[optind]);
    if (wg_path) {
        rc = wg_options(cfg, wg_path, role_client, port_set, mtu_set, err, errsz);
        if (rc < 0)
            return rc;
        role_server = true; /* peer to peer: every end listens */
    }
    if (role_client && role_server)
        return fail(err, errsz, "-s and -c exclude each other: be a server or a client");
    if (!role_client && !role_server)
        return fail(err, errsz, "say -s (server) or -c HOST (client) (see --help)");
    cfg->role = role_client ? MT_ROLE_CLIENT : MT_ROLE_SERVER;
    if (cfg->idle_timeout <= cfg->keepalive)
        return fail(err, errsz, "--idle-timeout (%g s) must be longer than --keepalive (%g s)",
                    cfg->idle_timeout, cfg->keepalive);
    return check_ipv6_mtu(cfg, err, errsz);
}

void mt_config_free(struct mt_config *cfg)
{
    for (int i = 0; i < cfg->nscripts; i++) {
        free(cfg->scripts[i].text);
        cfg->scripts[i].text = NULL;
    }
    cfg->nscripts = 0;
    if (cfg->wg) {
        mt_wg_config_free(cfg->wg);
        free(cfg->wg);
        cfg->wg = NULL;
    }
}
