/* Unit tests for the control socket's line protocol (core/ctlproto.c: request words, reply
 * headers, ADDR:PORT, the bounded reply buffer and its escapes) and the --config file
 * (core/conffile.c: lines, comments, errors with FILE:LINE, the command line overriding). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cmocka.h>

#include "conffile.h"
#include "ctlproto.h"
#include "moontun/config.h"

static int split(const char *text, char **w, int max)
{
    static char buf[MT_CTL_LINE_MAX + 1];
    size_t len = strlen(text);
    memcpy(buf, text, len + 1);
    return mt_ctl_split(buf, len, w, max);
}

static void test_split(void **state)
{
    char *w[MT_CTL_MAX_WORDS];
    assert_int_equal(split("show", w, 8), 1);
    assert_string_equal(w[0], "show");
    assert_int_equal(split("  peer  10.0.0.1:5 kill\r", w, 8), 3); /* CRLF, runs of spaces */
    assert_string_equal(w[0], "peer");
    assert_string_equal(w[1], "10.0.0.1:5");
    assert_string_equal(w[2], "kill");
    assert_int_equal(split("", w, 8), 0);
    assert_int_equal(split("   ", w, 8), 0);
    assert_int_equal(split("a b c d", w, 3), -E2BIG);
    assert_int_equal(split("show\tjson", w, 8), -EINVAL); /* controls refused */
    assert_int_equal(split("sh\x80ow", w, 8), -EINVAL);   /* and bytes past ASCII */
    char nul[] = "sh\0ow";
    assert_int_equal(mt_ctl_split(nul, 5, w, 8), -EINVAL); /* a NUL inside the line */
}

static void test_header(void **state)
{
    size_t len = 99;
    const char *msg = NULL;
    assert_int_equal(mt_ctl_parse_header("ok 0", &len, &msg), 0);
    assert_int_equal(len, 0);
    assert_int_equal(mt_ctl_parse_header("ok 1234", &len, &msg), 0);
    assert_int_equal(len, 1234);
    assert_int_equal(mt_ctl_parse_header("error no peer x", &len, &msg), 1);
    assert_string_equal(msg, "no peer x");
    assert_int_equal(mt_ctl_parse_header("ok ", &len, &msg), -EPROTO);
    assert_int_equal(mt_ctl_parse_header("ok -1", &len, &msg), -EPROTO);
    assert_int_equal(mt_ctl_parse_header("ok 12x", &len, &msg), -EPROTO);
    assert_int_equal(mt_ctl_parse_header("OK 1", &len, &msg), -EPROTO);
    /* a liar's length: beyond the cap, and one that would wrap a 64-bit size */
    assert_int_equal(mt_ctl_parse_header("ok 16777217", &len, &msg), -EPROTO);
    assert_int_equal(mt_ctl_parse_header("ok 99999999999999999999999", &len, &msg), -EPROTO);
}

static void test_hostport(void **state)
{
    struct sockaddr_storage ss;
    unsigned len;
    assert_int_equal(mt_ctl_parse_hostport("127.0.0.1:9586", &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 9586);
    assert_int_equal(mt_ctl_parse_hostport("[::1]:80", &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(len, sizeof(struct sockaddr_in6));
    assert_int_equal(mt_ctl_parse_hostport("::1:80", NULL, NULL), -EINVAL); /* brackets */
    assert_int_equal(mt_ctl_parse_hostport("localhost:80", NULL, NULL), -EINVAL);
    assert_int_equal(mt_ctl_parse_hostport("127.0.0.1", NULL, NULL), -EINVAL);
    assert_int_equal(mt_ctl_parse_hostport("127.0.0.1:0", NULL, NULL), -EINVAL);
    assert_int_equal(mt_ctl_parse_hostport("127.0.0.1:65536", NULL, NULL), -EINVAL);
    assert_int_equal(mt_ctl_parse_hostport(":80", NULL, NULL), -EINVAL);
    assert_int_equal(mt_ctl_parse_hostport("[]:80", NULL, NULL), -EINVAL);
}

static void test_buf(void **state)
{
    struct mt_buf b;
    mt_buf_init(&b, 16);
    mt_buf_printf(&b, "%s", "0123456789");
    assert_false(b.overflow);
    mt_buf_printf(&b, "%s", "0123456789"); /* past the cap: stops, remembers */
    assert_true(b.overflow);
    assert_int_equal(b.len, 10);
    mt_buf_free(&b);

    mt_buf_init(&b, 1024);
    mt_buf_json(&b, "a\"b\\c\n\x01\xe9");
    assert_string_equal(b.data, "a\\\"b\\\\c\\u000a\\u0001\\u00e9");
    mt_buf_free(&b);
    mt_buf_init(&b, 1024);
    mt_buf_label(&b, "x\"y\\z\n");
    assert_string_equal(b.data, "x\\\"y\\\\z\\n");
    mt_buf_free(&b);
}

/* --- --config ------------------------------------------------------------------------------- */

static char err[512];

static int parse_text(const char *text, struct mt_argv *a)
{
    memset(a, 0, sizeof *a);
    a->text = strdup(text);
    return mt_conffile_parse("t.conf", a->text, a, err, sizeof err);
}

static void test_conffile_lines(void **state)
{
    struct mt_argv a;
    assert_int_equal(parse_text("# a deployment\n"
                                "server\n"
                                "  mtu 1300   # comment after a value\n"
                                "\n"
                                "udp\n"
                                "addr 10.9.0.1/24\n"
                                "control /tmp/x.sock\n",
                                &a),
                     0);
    const char *want[] = {"--server", "--mtu",       "1300",      "--udp",
                          "--addr",   "10.9.0.1/24", "--control", "/tmp/x.sock"};
    assert_int_equal(a.argc, 8);
    for (int i = 0; i < 8; i++)
        assert_string_equal(a.argv[i], want[i]);
    assert_null(a.argv[8]);
    mt_argv_free(&a);
}

static void test_conffile_errors(void **state)
{
    struct mt_argv a;
    assert_int_equal(parse_text("server\n\nmtu 20\n", &a), -EINVAL);
    assert_non_null(strstr(err, "t.conf:3: --mtu"));
    mt_argv_free(&a);
    assert_int_equal(parse_text("mtu\n", &a), -EINVAL); /* value missing */
    assert_non_null(strstr(err, "t.conf:1: "));
    assert_non_null(strstr(err, "needs a value"));
    mt_argv_free(&a);
    assert_int_equal(parse_text("server yes\n", &a), -EINVAL); /* a flag given a value */
    assert_non_null(strstr(err, "t.conf:1: "));
    mt_argv_free(&a);
    assert_int_equal(parse_text("# ok\nfrobnicate 3\n", &a), -EINVAL);
    assert_non_null(strstr(err, "t.conf:2: unknown option '--frobnicate'"));
    mt_argv_free(&a);
    assert_int_equal(parse_text("--mtu 1300\n", &a), -EINVAL);
    assert_non_null(strstr(err, "t.conf:1: write 'mtu' without the dashes"));
    mt_argv_free(&a);
    assert_int_equal(parse_text("config other.conf\n", &a), -EINVAL);
    assert_non_null(strstr(err, "t.conf:1: 'config' has no place"));
    mt_argv_free(&a);
    /* each line alone: keepalive and idle-timeout checked against each other only when whole */
    assert_int_equal(parse_text("keepalive 100\nidle-timeout 300\n", &a), 0);
    mt_argv_free(&a);
}

static void test_conffile_expand(void **state)
{
    char path[] = "/tmp/moontun_test_conf_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char body[] = "server\nmtu 1300\naddr 10.9.0.1/24\naddr fd09::1/64\nport 4000\n";
    assert_int_equal(write(fd, body, sizeof body - 1), (ssize_t)(sizeof body - 1));
    close(fd);

    /* the command line's -c replaces the role, its --addr the list, its --mtu wins */
    char *argv[] = {"moontun", "--config",    path,    "-c",   "10.0.0.1",
                    "--addr",  "10.9.0.2/24", "--mtu", "1280", NULL};
    struct mt_argv a = {0};
    assert_int_equal(mt_conffile_expand(9, argv, &a, err, sizeof err), 1);
    static struct mt_config cfg;
    assert_int_equal(mt_config_parse(&cfg, a.argc, a.argv, err, sizeof err), MT_CONFIG_RUN);
    assert_int_equal(cfg.role, MT_ROLE_CLIENT);
    assert_string_equal(cfg.host, "10.0.0.1");
    assert_int_equal(cfg.mtu, 1280);
    assert_int_equal(cfg.port, 4000); /* from the file */
    assert_int_equal(cfg.naddrs, 1);  /* the file's two replaced by the command line's one */
    mt_config_free(&cfg);
    mt_argv_free(&a);

    char *plain[] = {"moontun", "-s", NULL};
    assert_int_equal(mt_conffile_expand(2, plain, &a, err, sizeof err), 0);
    char *twice[] = {"moontun", "--config", path, "--config=x", NULL};
    assert_int_equal(mt_conffile_expand(4, twice, &a, err, sizeof err), -EINVAL);
    char *missing[] = {"moontun", "--config", "/nonexistent/m.conf", NULL};
    assert_true(mt_conffile_expand(3, missing, &a, err, sizeof err) < 0);
    assert_non_null(strstr(err, "--config /nonexistent/m.conf: No such file"));
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),           cmocka_unit_test(test_header),
        cmocka_unit_test(test_hostport),        cmocka_unit_test(test_buf),
        cmocka_unit_test(test_conffile_lines),  cmocka_unit_test(test_conffile_errors),
        cmocka_unit_test(test_conffile_expand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
