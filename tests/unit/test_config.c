/* Unit tests for the command line (core/config.c): defaults, every flag in
 * its long and short form, -S splitting, repeatable options, one-line errors that name the
 * option, --help/--version, and prefix parsing and matching. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "moontun/config.h"
#include "moontun/log.h"
#include "wg/config.h"

static struct mt_config cfg;
static char err[512];
static char script_path[64]; /* a real, readable script made in the group setup */
static char script_path2[64];

static int make_script(char *path, size_t pathsz)
{
    snprintf(path, pathsz, "/tmp/moontun_test_config_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    static const char body[] = "return {}\n";
    ssize_t n = write(fd, body, sizeof(body) - 1);
    close(fd);
    return n == (ssize_t)(sizeof(body) - 1) ? 0 : -1;
}

static int group_setup(void **state)
{
    if (make_script(script_path, sizeof(script_path)) < 0)
        return -1;
    return make_script(script_path2, sizeof(script_path2));
}

static int group_teardown(void **state)
{
    unlink(script_path);
    unlink(script_path2);
    return 0;
}

/* argv is NULL-terminated; argc is counted, so each test lists only its arguments. */
static int parse_argv(char **argv)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    memset(err, 0, sizeof(err));
    return mt_config_parse(&cfg, argc, argv, err, sizeof(err));
}

#define PARSE(...) parse_argv((char *[]){"moontun", __VA_ARGS__, NULL})

/* A parse that must succeed; prints the message if it did not. */
#define PARSE_OK(...)                                                                              \
    do {                                                                                           \
        int rc_ = PARSE(__VA_ARGS__);                                                              \
        if (rc_ != MT_CONFIG_RUN)                                                                  \
            print_error("parse returned %d: %s\n", rc_, err);                                      \
        assert_int_equal(rc_, MT_CONFIG_RUN);                                                      \
    } while (0)

/* A parse that must fail with one line mentioning needle. */
#define PARSE_FAILS(needle, ...)                                                                   \
    do {                                                                                           \
        int rc_ = PARSE(__VA_ARGS__);                                                              \
        assert_true(rc_ < 0);                                                                      \
        check_message(needle);                                                                     \
        mt_config_free(&cfg);                                                                      \
    } while (0)

static void check_message(const char *needle)
{
    if (err[0] == '\0' || strchr(err, '\n') || !strstr(err, needle)) {
        print_error("message '%s' is not one line naming '%s'\n", err, needle);
        fail();
    }
}

/* Runs a parse with stdout sent to /dev/null, so --help text does not mix with test output. */
static int parse_quietly(char **argv)
{
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    int null = open("/dev/null", O_WRONLY);
    assert_true(saved >= 0 && null >= 0);
    assert_int_not_equal(dup2(null, STDOUT_FILENO), -1);
    close(null);
    int rc = parse_argv(argv);
    fflush(stdout);
    assert_int_not_equal(dup2(saved, STDOUT_FILENO), -1);
    close(saved);
    return rc;
}

static void check_prefix(const struct mt_prefix *p, const char *text)
{
    struct mt_prefix want;
    assert_int_equal(mt_prefix_parse(text, &want), 0);
    assert_int_equal(p->addr.kind, want.addr.kind);
    assert_int_equal(p->len, want.len);
    assert_memory_equal(p->addr.b, want.addr.b, sizeof(want.addr.b));
}

/* ---- regressions ---- */

/* getopt keeps its place inside a "-hs" cluster between calls unless optind is reset to 0:
 * a second parse then read the first one's leftover 's' and skipped past -c. */
static void test_reparse_after_cluster(void **state)
{
    (void)state;
    assert_int_equal(parse_quietly((char *[]){"moontun", "-hs", NULL}), MT_CONFIG_EXIT);
    mt_config_free(&cfg);
    PARSE_OK("-c", "h");
    assert_int_equal(cfg.role, MT_ROLE_CLIENT);
    assert_string_equal(cfg.host, "h");
    mt_config_free(&cfg);
}

/* An unknown short flag at the start of a cluster was reported as the program's name. */
static void test_unknown_flag_in_cluster(void **state)
{
    (void)state;
    PARSE_FAILS("'-x'", "-xs");
}

/* strtol takes leading blanks and a sign: " 80" and "+80" are not ports. */
static void test_numbers_without_blanks_or_plus(void **state)
{
    (void)state;
    PARSE_FAILS("-p", "-s", "-p", " 80");
    PARSE_FAILS("-p", "-s", "-p", "+80");
    PARSE_FAILS("--addr", "-s", "--addr", "10.0.0.1/ 8");
}

/* ---- defaults and flags ---- */

static void test_defaults(void **state)
{
    PARSE_OK("-s");
    assert_int_equal(cfg.port, 55555);
    assert_false(cfg.tap);
    assert_int_equal(cfg.transport, MT_TRANSPORT_TCP);
    assert_int_equal(cfg.mtu, 1400);
    assert_int_equal(cfg.on_error, MT_ON_ERROR_DROP);
    assert_int_equal(cfg.lua_budget, 0); /* the time bound alone */
    assert_int_equal(cfg.lua_mem_mb, 64);
    assert_int_equal(cfg.lua_time_ms, 50);
    assert_int_equal(cfg.max_peers, 256);
    assert_true(cfg.keepalive == 10.0);
    assert_true(cfg.idle_timeout == 60.0);
    assert_int_equal(cfg.log_level, MT_LOG_INFO);
    assert_string_equal(cfg.ifname, "");
    assert_string_equal(cfg.listen, "");
    assert_string_equal(cfg.user, "");
    assert_int_equal(cfg.nscripts, 0);
    assert_int_equal(cfg.naddrs, 0);
    assert_int_equal(cfg.nallow, 0);
    mt_config_free(&cfg);
}

static void test_server(void **state)
{
    PARSE_OK("-s");
    assert_int_equal(cfg.role, MT_ROLE_SERVER);
    mt_config_free(&cfg);
    PARSE_OK("--server");
    assert_int_equal(cfg.role, MT_ROLE_SERVER);
    mt_config_free(&cfg);
}

static void test_client(void **state)
{
    PARSE_OK("-c", "vpn.example.org");
    assert_int_equal(cfg.role, MT_ROLE_CLIENT);
    assert_string_equal(cfg.host, "vpn.example.org");
    mt_config_free(&cfg);
    PARSE_OK("--client", "fd00::1");
    assert_int_equal(cfg.role, MT_ROLE_CLIENT);
    assert_string_equal(cfg.host, "fd00::1");
    mt_config_free(&cfg);
}

static void test_iface(void **state)
{
    PARSE_OK("-s", "-i", "mt0");
    assert_string_equal(cfg.ifname, "mt0");
    mt_config_free(&cfg);
    PARSE_OK("-s", "--iface", "fifteen_chars_x"); /* IFNAMSIZ - 1 fits */
    assert_string_equal(cfg.ifname, "fifteen_chars_x");
    mt_config_free(&cfg);
}

static void test_tap_and_tun(void **state)
{
    PARSE_OK("-s", "-a");
    assert_true(cfg.tap);
    mt_config_free(&cfg);
    PARSE_OK("-s", "--tap");
    assert_true(cfg.tap);
    mt_config_free(&cfg);
    PARSE_OK("-s", "-a", "-u"); /* the last one wins */
    assert_false(cfg.tap);
    mt_config_free(&cfg);
    PARSE_OK("-s", "--tap", "--tun");
    assert_false(cfg.tap);
    mt_config_free(&cfg);
}

static void test_port(void **state)
{
    PARSE_OK("-s", "-p", "1");
    assert_int_equal(cfg.port, 1);
    mt_config_free(&cfg);
    PARSE_OK("-s", "--port", "65535");
    assert_int_equal(cfg.port, 65535);
    mt_config_free(&cfg);
}

static void test_listen(void **state)
{
    PARSE_OK("-s", "-l", "127.0.0.1");
    assert_string_equal(cfg.listen, "127.0.0.1");
    mt_config_free(&cfg);
    PARSE_OK("-s", "--listen", "::1");
    assert_string_equal(cfg.listen, "::1");
    mt_config_free(&cfg);
}

static void test_transport(void **state)
{
    PARSE_OK("-s", "--udp");
    assert_int_equal(cfg.transport, MT_TRANSPORT_UDP);
    mt_config_free(&cfg);
    PARSE_OK("-s", "--udp", "--tcp");
    assert_int_equal(cfg.transport, MT_TRANSPORT_TCP);
    mt_config_free(&cfg);
}

/* A wg(8) file for --wg, written to a temporary path (mode 600). */
static void write_wg_file(char *path, size_t pathsz, const char *text)
{
    snprintf(path, pathsz, "/tmp/moontun_test_wg_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

#define WG_KEY "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
#define WG_PUB "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="

/* --wg: the transport, no -s/-c needed; the file's ListenPort, MTU and Address apply unless
 * the command line gave --mtu/--addr; -c is refused; a bad file names its line. */
static void test_wg(void **state)
{
    char path[64], bad[64];
    write_wg_file(path, sizeof(path),
                  "[Interface]\nPrivateKey = " WG_KEY "\nListenPort = 51999\nAddress = "
                  "10.5.0.2/24, fd05::2/64\nMTU = 1420\n\n[Peer]\nPublicKey = " WG_PUB
                  "\nAllowedIPs = 10.5.0.1/32\n");
    PARSE_OK("--wg", path);
    assert_int_equal(cfg.transport, MT_TRANSPORT_WG);
    assert_int_equal(cfg.role, MT_ROLE_SERVER);
    assert_int_equal(cfg.port, 51999);
    assert_int_equal(cfg.mtu, 1420);
    assert_int_equal(cfg.naddrs, 2);
    check_prefix(&cfg.addrs[0], "10.5.0.2/24");
    check_prefix(&cfg.addrs[1], "fd05::2/64");
    assert_non_null(cfg.wg);
    assert_int_equal(cfg.wg->n_peers, 1);
    mt_config_free(&cfg);
    assert_null(cfg.wg);

    PARSE_OK("--wg", path, "--mtu", "1300", "--addr", "10.6.0.2/24", "-p", "4000");
    assert_int_equal(cfg.mtu, 1300);
    assert_int_equal(cfg.naddrs, 1);
    check_prefix(&cfg.addrs[0], "10.6.0.2/24");
    assert_int_equal(cfg.port, 51999); /* ListenPort wins over -p */
    mt_config_free(&cfg);

    PARSE_FAILS("exclude", "--wg", path, "-c", "example.org");
    PARSE_FAILS("--udp", "--wg", path, "--udp");
    write_wg_file(bad, sizeof(bad), "[Interface]\nPrivateKey = nope\n");
    PARSE_FAILS("line 2", "--wg", bad);
    unlink(bad);
    write_wg_file(bad, sizeof(bad), "[Peer]\nPublicKey = " WG_PUB "\n");
    PARSE_FAILS("no PrivateKey", "--wg", bad);
    unlink(bad);
    write_wg_file(bad, sizeof(bad), "[Interface]\nPrivateKey = " WG_KEY "\n");
    PARSE_OK("--wg", bad, "-p", "4000");
    assert_int_equal(cfg.port, 4000); /* no ListenPort: -p */
    mt_config_free(&cfg);
    PARSE_OK("--wg", bad);
    assert_int_equal(cfg.port, 0); /* neither: any port, as wg(8) */
    mt_config_free(&cfg);
    unlink(bad);
    unlink(path);
}

static void test_script_short_and_long(void **state)
{
    PARSE_OK("-s", "-S", script_path);
    assert_int_equal(cfg.nscripts, 1);
    assert_string_equal(cfg.scripts[0].path, script_path);
    assert_int_equal(cfg.scripts[0].nargs, 0);
    mt_config_free(&cfg);
    PARSE_OK("-s", "--script", script_path);
    assert_int_equal(cfg.nscripts, 1);
    assert_string_equal(cfg.scripts[0].path, script_path);
    mt_config_free(&cfg);
}

static void test_script_settings(void **state)
{
    char arg[256];
    snprintf(arg, sizeof(arg), "%s k=v  k2=v2\tpath=/a/b=c", script_path);
    PARSE_OK("-s", "-S", arg);
    assert_int_equal(cfg.nscripts, 1);
    const struct mt_script_spec *s = &cfg.scripts[0];
    assert_string_equal(s->path, script_path);
    assert_int_equal(s->nargs, 3);
    assert_string_equal(s->keys[0], "k");
    assert_string_equal(s->values[0], "v");
    assert_string_equal(s->keys[1], "k2");
    assert_string_equal(s->values[1], "v2");
    assert_string_equal(s->keys[2], "path"); /* only the first '=' splits */
    assert_string_equal(s->values[2], "/a/b=c");
    mt_config_free(&cfg);
    assert_int_equal(cfg.nscripts, 0);
}

static void test_script_missing_file(void **state)
{
    char missing[128];
    snprintf(missing, sizeof(missing), "%s.missing", script_path);
    PARSE_FAILS(missing, "-s", "-S", missing);
}

static void test_script_setting_without_equals(void **state)
{
    char arg[256];
    snprintf(arg, sizeof(arg), "%s k=v novalue", script_path);
    int rc = PARSE("-s", "-S", arg);
    assert_true(rc < 0);
    check_message("-S");
    check_message("novalue");
    mt_config_free(&cfg);
}

static void test_scripts_accumulate(void **state)
{
    char arg[256];
    snprintf(arg, sizeof(arg), "%s n=2", script_path2);
    PARSE_OK("-S", script_path, "-s", "--script", arg);
    assert_int_equal(cfg.nscripts, 2);
    assert_string_equal(cfg.scripts[0].path, script_path);
    assert_int_equal(cfg.scripts[0].nargs, 0);
    assert_string_equal(cfg.scripts[1].path, script_path2);
    assert_int_equal(cfg.scripts[1].nargs, 1);
    assert_string_equal(cfg.scripts[1].keys[0], "n");
    assert_string_equal(cfg.scripts[1].values[0], "2");
    mt_config_free(&cfg);
}

static void test_addrs_accumulate(void **state)
{
    PARSE_OK("-s", "--addr", "10.0.0.1/24", "--addr", "fd00::1/64", "--addr", "192.168.1.9");
    assert_int_equal(cfg.naddrs, 3);
    check_prefix(&cfg.addrs[0], "10.0.0.1/24");
    assert_int_equal(cfg.addrs[0].addr.kind, MT_ADDR_IP4);
    assert_int_equal(cfg.addrs[0].len, 24);
    check_prefix(&cfg.addrs[1], "fd00::1/64");
    assert_int_equal(cfg.addrs[1].addr.kind, MT_ADDR_IP6);
    assert_int_equal(cfg.addrs[1].len, 64);
    assert_int_equal(cfg.addrs[2].len, 32); /* a bare address is a host */
    mt_config_free(&cfg);
}

static void test_allow_accumulate(void **state)
{
    PARSE_OK("-s", "--allow", "10.0.0.0/8", "--allow", "fd00::/16");
    assert_int_equal(cfg.nallow, 2);
    check_prefix(&cfg.allow[0], "10.0.0.0/8");
    check_prefix(&cfg.allow[1], "fd00::/16");
    mt_config_free(&cfg);
}

static void test_mtu(void **state)
{
    PARSE_OK("-s", "--mtu", "68");
    assert_int_equal(cfg.mtu, 68);
    mt_config_free(&cfg);
    PARSE_OK("-s", "--mtu", "65000");
    assert_int_equal(cfg.mtu, 65000);
    mt_config_free(&cfg);
}

static void test_on_error(void **state)
{
    PARSE_OK("-s", "--on-error", "pass");
    assert_int_equal(cfg.on_error, MT_ON_ERROR_PASS);
    mt_config_free(&cfg);
    PARSE_OK("-s", "--on-error", "pass", "--on-error", "drop");
    assert_int_equal(cfg.on_error, MT_ON_ERROR_DROP);
    mt_config_free(&cfg);
}

static void test_lua_budget(void **state)
{
    PARSE_OK("-s", "--lua-budget", "1000");
    assert_int_equal(cfg.lua_budget, 1000);
    mt_config_free(&cfg);
    PARSE_OK("-s", "--lua-budget", "50000000");
    assert_int_equal(cfg.lua_budget, 50000000);
    mt_config_free(&cfg);
    PARSE_OK("-s", "--lua-budget", "0"); /* none: the time bound alone */
    assert_int_equal(cfg.lua_budget, 0);
    mt_config_free(&cfg);
}

static void test_lua_mem(void **state)
{
    PARSE_OK("-s", "--lua-mem", "1");
    assert_int_equal(cfg.lua_mem_mb, 1);
    mt_config_free(&cfg);
    PARSE_OK("-s", "--lua-mem", "512");
    assert_int_equal(cfg.lua_mem_mb, 512);
    mt_config_free(&cfg);
}

static void test_lua_time(void **state)
{
    PARSE_OK("-s", "--lua-time", "1");
    assert_int_equal(cfg.lua_time_ms, 1);
    mt_config_free(&cfg);
    PARSE_OK("-s", "--lua-time", "250");
    assert_int_equal(cfg.lua_time_ms, 250);
    mt_config_free(&cfg);
}

static void test_lua_time_out_of_range(void **state)
{
    PARSE_FAILS("--lua-time", "-s", "--lua-time", "0");
    PARSE_FAILS("--lua-time", "-s", "--lua-time", "10001");
}

static void test_user(void **state)
{
    PARSE_OK("-s", "--user", "root"); /* the one account every system has */
    assert_string_equal(cfg.user, "root");
    mt_config_free(&cfg);
}

static void test_max_peers(void **state)
{
    PARSE_OK("-s", "--max-peers", "1");
    assert_int_equal(cfg.max_peers, 1);
    mt_config_free(&cfg);
    PARSE_OK("-s", "--max-peers", "4096");
    assert_int_equal(cfg.max_peers, 4096);
    mt_config_free(&cfg);
}

/* --outer-df (off unless on: routers may fragment outer datagrams) and --udp-offload (auto
 * unless off: kernel GSO/GRO where it has them): the last one given wins; anything else
 * fails. */
static void test_outer_df_and_udp_offload(void **state)
{
    PARSE_OK("-s", "--udp");
    assert_false(cfg.outer_df);
    assert_false(cfg.no_udp_offload);
    mt_config_free(&cfg);
    PARSE_OK("-s", "--udp", "--outer-df", "on", "--udp-offload", "off");
    assert_true(cfg.outer_df);
    assert_true(cfg.no_udp_offload);
    mt_config_free(&cfg);
    PARSE_OK("-s", "--udp", "--outer-df", "on", "--outer-df", "off", "--udp-offload", "off",
             "--udp-offload", "auto");
    assert_false(cfg.outer_df);
    assert_false(cfg.no_udp_offload);
    mt_config_free(&cfg);
    PARSE_FAILS("--outer-df", "-s", "--outer-df", "yes");
    PARSE_FAILS("--outer-df", "-s", "--outer-df");
    PARSE_FAILS("--udp-offload", "-s", "--udp-offload", "on");
    PARSE_FAILS("--udp-offload", "-s", "--udp-offload");
}

static void test_keepalive_and_idle(void **state)
{
    PARSE_OK("-s", "--udp", "--keepalive", "2.5", "--idle-timeout", "30");
    assert_true(cfg.keepalive == 2.5);
    assert_true(cfg.idle_timeout == 30.0);
    mt_config_free(&cfg);
}

static void test_debug_and_quiet(void **state)
{
    PARSE_OK("-s", "-d");
    assert_int_equal(cfg.log_level, MT_LOG_DEBUG);
    mt_config_free(&cfg);
    PARSE_OK("-s", "--debug");
    assert_int_equal(cfg.log_level, MT_LOG_DEBUG);
    mt_config_free(&cfg);
    PARSE_OK("-s", "-q");
    assert_int_equal(cfg.log_level, MT_LOG_ERROR);
    mt_config_free(&cfg);
    PARSE_OK("-s", "--quiet");
    assert_int_equal(cfg.log_level, MT_LOG_ERROR);
    mt_config_free(&cfg);
}

static void test_help(void **state)
{
    assert_int_equal(parse_quietly((char *[]){"moontun", "--help", NULL}), MT_CONFIG_EXIT);
    mt_config_free(&cfg);
    assert_int_equal(parse_quietly((char *[]){"moontun", "-h", NULL}), MT_CONFIG_EXIT);
    mt_config_free(&cfg);
}

static void test_version(void **state)
{
    assert_int_equal(parse_quietly((char *[]){"moontun", "--version", NULL}), MT_CONFIG_EXIT);
    mt_config_free(&cfg);
    assert_int_equal(parse_quietly((char *[]){"moontun", "-V", NULL}), MT_CONFIG_EXIT);
    mt_config_free(&cfg);
}

/* ---- errors: negative, one line, naming the option ---- */

static void test_port_zero(void **state)
{
    PARSE_FAILS("-p", "-s", "-p", "0");
}

static void test_port_too_big(void **state)
{
    PARSE_FAILS("-p", "-s", "--port", "70000");
}

static void test_port_not_a_number(void **state)
{
    PARSE_FAILS("-p", "-s", "-p", "abc");
}

static void test_port_trailing_junk(void **state)
{
    PARSE_FAILS("-p", "-s", "-p", "80x");
}

static void test_addr_v4_length_too_long(void **state)
{
    PARSE_FAILS("--addr", "-s", "--addr", "10.0.0.1/33");
}

static void test_addr_v6_length_too_long(void **state)
{
    PARSE_FAILS("--addr", "-s", "--addr", "fd00::1/129");
}

static void test_addr_nonsense(void **state)
{
    PARSE_FAILS("--addr", "-s", "--addr", "nonsense");
}

static void test_addr_empty_length(void **state)
{
    PARSE_FAILS("--addr", "-s", "--addr", "10.0.0.1/");
}

static void test_allow_bad_prefix(void **state)
{
    PARSE_FAILS("--allow", "-s", "--allow", "10.0.0.0/40");
}

static void test_mtu_too_small(void **state)
{
    PARSE_FAILS("--mtu", "-s", "--mtu", "40");
}

static void test_mtu_too_big(void **state)
{
    PARSE_FAILS("--mtu", "-s", "--mtu", "70000");
}

/* IPv6 needs 1280 bytes: the error names the address and the minimum, in either order of
 * the flags; IPv4 alone may go down to 68, and IPv6 at exactly 1280 is fine. */
static void test_mtu_too_small_for_ipv6(void **state)
{
    PARSE_FAILS("fd09::1/64", "-s", "--mtu", "576", "--addr", "10.9.0.1/24", "--addr",
                "fd09::1/64");
    assert_non_null(strstr(err, "1280"));
    PARSE_FAILS("fd09::2/64", "-s", "--addr", "fd09::2/64", "--mtu", "1279");
    assert_non_null(strstr(err, "1279"));
}

static void test_mtu_small_ipv4_or_ipv6_at_minimum(void **state)
{
    PARSE_OK("-s", "--mtu", "576", "--addr", "10.9.0.1/24");
    assert_int_equal(cfg.mtu, 576);
    mt_config_free(&cfg);
    PARSE_OK("-s", "--mtu", "1280", "--addr", "fd09::1/64");
    assert_int_equal(cfg.mtu, 1280);
    mt_config_free(&cfg);
}

static void test_on_error_unknown(void **state)
{
    PARSE_FAILS("--on-error", "-s", "--on-error", "maybe");
}

static void test_lua_budget_too_small(void **state)
{
    PARSE_FAILS("--lua-budget", "-s", "--lua-budget", "5");
}

static void test_lua_mem_zero(void **state)
{
    PARSE_FAILS("--lua-mem", "-s", "--lua-mem", "0");
}

static void test_max_peers_zero(void **state)
{
    PARSE_FAILS("--max-peers", "-s", "--max-peers", "0");
}

static void test_user_unknown(void **state)
{
    PARSE_FAILS("--user", "-s", "--user", "nosuchuser_xyz");
}

static void test_unknown_long_flag(void **state)
{
    PARSE_FAILS("--bogus", "-s", "--bogus");
}

static void test_unknown_short_flag(void **state)
{
    PARSE_FAILS("-x", "-s", "-x");
}

static void test_missing_value_short(void **state)
{
    PARSE_FAILS("-p", "-s", "-p");
}

static void test_missing_value_long(void **state)
{
    PARSE_FAILS("--mtu", "-s", "--mtu");
}

static void test_server_and_client(void **state)
{
    PARSE_FAILS("-c", "-s", "-c", "host");
}

static void test_no_role(void **state)
{
    PARSE_FAILS("-s", "-p", "1234");
}

static void test_stray_argument(void **state)
{
    PARSE_FAILS("extra", "-s", "extra");
}

static void test_idle_equal_to_keepalive(void **state)
{
    PARSE_FAILS("--idle-timeout", "-s", "--keepalive", "20", "--idle-timeout", "20");
}

static void test_idle_shorter_than_keepalive(void **state)
{
    PARSE_FAILS("--idle-timeout", "-s", "--keepalive", "90");   /* default idle is 60... */
    PARSE_FAILS("--idle-timeout", "-s", "--idle-timeout", "5"); /* ...and keepalive 10 */
}

static void test_iface_too_long(void **state)
{
    PARSE_FAILS("-i", "-s", "-i", "sixteen_chars_xx");
}

static void test_iface_empty(void **state)
{
    PARSE_FAILS("-i", "-s", "-i", "");
}

/* ---- prefixes ---- */

static struct mt_addr addr_of(const char *text)
{
    struct mt_prefix p;
    assert_int_equal(mt_prefix_parse(text, &p), 0);
    return p.addr;
}

static bool contains(const char *prefix, const char *addr)
{
    struct mt_prefix p;
    assert_int_equal(mt_prefix_parse(prefix, &p), 0);
    struct mt_addr a = addr_of(addr);
    return mt_prefix_contains(&p, &a);
}

static void test_prefix_parse(void **state)
{
    struct mt_prefix p;
    assert_int_equal(mt_prefix_parse("10.1.2.3/24", &p), 0);
    assert_int_equal(p.addr.kind, MT_ADDR_IP4);
    assert_int_equal(p.len, 24);
    assert_int_equal(p.addr.b[0], 10);
    assert_int_equal(p.addr.b[3], 3); /* host bits kept as given */
    assert_int_equal(mt_prefix_parse("fd00::1", &p), 0);
    assert_int_equal(p.addr.kind, MT_ADDR_IP6);
    assert_int_equal(p.len, 128);
    assert_int_equal(mt_prefix_parse("0.0.0.0/0", &p), 0);
    assert_int_equal(p.len, 0);
    assert_int_equal(mt_prefix_parse("", &p), -EINVAL);
    assert_int_equal(mt_prefix_parse("10.0.0.1/33", &p), -EINVAL);
    assert_int_equal(mt_prefix_parse("fd00::/129", &p), -EINVAL);
    assert_int_equal(mt_prefix_parse("10.0.0.1/", &p), -EINVAL);
    assert_int_equal(mt_prefix_parse("10.0.0.1/8x", &p), -EINVAL);
    assert_int_equal(mt_prefix_parse("nonsense", &p), -EINVAL);
}

static void test_contains_len0(void **state)
{
    assert_true(contains("0.0.0.0/0", "1.2.3.4"));
    assert_true(contains("10.9.9.9/0", "255.255.255.255"));
    assert_true(contains("::/0", "2001:db8::1"));
}

static void test_contains_len8(void **state)
{
    assert_true(contains("10.0.0.0/8", "10.255.1.2"));
    assert_false(contains("10.0.0.0/8", "11.0.0.0"));
}

static void test_contains_len24(void **state)
{
    assert_true(contains("192.168.1.77/24", "192.168.1.0"));
    assert_true(contains("192.168.1.0/24", "192.168.1.255"));
    assert_false(contains("192.168.1.0/24", "192.168.2.1"));
}

static void test_contains_len32(void **state)
{
    assert_true(contains("10.0.0.1/32", "10.0.0.1"));
    assert_false(contains("10.0.0.1/32", "10.0.0.2"));
    assert_true(contains("10.0.0.1", "10.0.0.1")); /* bare address: /32 */
    assert_false(contains("10.0.0.1", "10.0.0.0"));
}

static void test_contains_len128(void **state)
{
    assert_true(contains("fd00::1/128", "fd00::1"));
    assert_false(contains("fd00::1/128", "fd00::2"));
    assert_false(contains("fd00::1", "fd00::1:1"));
}

static void test_contains_len64(void **state)
{
    assert_true(contains("2001:db8:1:2::/64", "2001:db8:1:2:ffff:ffff:ffff:ffff"));
    assert_false(contains("2001:db8:1:2::/64", "2001:db8:1:3::"));
}

static void test_contains_len13(void **state)
{
    /* 172.16.0.0/13 spans 172.16.0.0 - 172.23.255.255: the second byte's top 5 bits. */
    assert_true(contains("172.16.0.0/13", "172.16.0.0"));
    assert_true(contains("172.16.0.0/13", "172.23.255.255"));
    assert_false(contains("172.16.0.0/13", "172.24.0.0"));
    assert_false(contains("172.16.0.0/13", "172.15.255.255"));
    assert_true(contains("172.20.1.1/13", "172.17.0.1")); /* host bits of the prefix ignored */
}

static void test_contains_len127(void **state)
{
    assert_true(contains("fd00::/127", "fd00::"));
    assert_true(contains("fd00::/127", "fd00::1"));
    assert_false(contains("fd00::/127", "fd00::2"));
    assert_true(contains("fd00::3/127", "fd00::2"));
}

static void test_contains_family_mismatch(void **state)
{
    assert_false(contains("0.0.0.0/0", "::"));
    assert_false(contains("::/0", "0.0.0.0"));
    assert_false(contains("::ffff:10.0.0.0/104", "10.0.0.1")); /* v4-mapped is still v6 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reparse_after_cluster),
        cmocka_unit_test(test_unknown_flag_in_cluster),
        cmocka_unit_test(test_numbers_without_blanks_or_plus),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_server),
        cmocka_unit_test(test_client),
        cmocka_unit_test(test_iface),
        cmocka_unit_test(test_tap_and_tun),
        cmocka_unit_test(test_port),
        cmocka_unit_test(test_listen),
        cmocka_unit_test(test_transport),
        cmocka_unit_test(test_wg),
        cmocka_unit_test(test_script_short_and_long),
        cmocka_unit_test(test_script_settings),
        cmocka_unit_test(test_script_missing_file),
        cmocka_unit_test(test_script_setting_without_equals),
        cmocka_unit_test(test_scripts_accumulate),
        cmocka_unit_test(test_addrs_accumulate),
        cmocka_unit_test(test_allow_accumulate),
        cmocka_unit_test(test_mtu),
        cmocka_unit_test(test_on_error),
        cmocka_unit_test(test_lua_budget),
        cmocka_unit_test(test_lua_mem),
        cmocka_unit_test(test_lua_time),
        cmocka_unit_test(test_lua_time_out_of_range),
        cmocka_unit_test(test_user),
        cmocka_unit_test(test_max_peers),
        cmocka_unit_test(test_outer_df_and_udp_offload),
        cmocka_unit_test(test_keepalive_and_idle),
        cmocka_unit_test(test_debug_and_quiet),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_port_zero),
        cmocka_unit_test(test_port_too_big),
        cmocka_unit_test(test_port_not_a_number),
        cmocka_unit_test(test_port_trailing_junk),
        cmocka_unit_test(test_addr_v4_length_too_long),
        cmocka_unit_test(test_addr_v6_length_too_long),
        cmocka_unit_test(test_addr_nonsense),
        cmocka_unit_test(test_addr_empty_length),
        cmocka_unit_test(test_allow_bad_prefix),
        cmocka_unit_test(test_mtu_too_small),
        cmocka_unit_test(test_mtu_too_big),
        cmocka_unit_test(test_mtu_too_small_for_ipv6),
        cmocka_unit_test(test_mtu_small_ipv4_or_ipv6_at_minimum),
        cmocka_unit_test(test_on_error_unknown),
        cmocka_unit_test(test_lua_budget_too_small),
        cmocka_unit_test(test_lua_mem_zero),
        cmocka_unit_test(test_max_peers_zero),
        cmocka_unit_test(test_user_unknown),
        cmocka_unit_test(test_unknown_long_flag),
        cmocka_unit_test(test_unknown_short_flag),
        cmocka_unit_test(test_missing_value_short),
        cmocka_unit_test(test_missing_value_long),
        cmocka_unit_test(test_server_and_client),
        cmocka_unit_test(test_no_role),
        cmocka_unit_test(test_stray_argument),
        cmocka_unit_test(test_idle_equal_to_keepalive),
        cmocka_unit_test(test_idle_shorter_than_keepalive),
        cmocka_unit_test(test_iface_too_long),
        cmocka_unit_test(test_iface_empty),
        cmocka_unit_test(test_prefix_parse),
        cmocka_unit_test(test_contains_len0),
        cmocka_unit_test(test_contains_len8),
        cmocka_unit_test(test_contains_len24),
        cmocka_unit_test(test_contains_len32),
        cmocka_unit_test(test_contains_len128),
        cmocka_unit_test(test_contains_len64),
        cmocka_unit_test(test_contains_len13),
        cmocka_unit_test(test_contains_len127),
        cmocka_unit_test(test_contains_family_mismatch),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
