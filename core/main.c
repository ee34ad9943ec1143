/* moontun: parse the command line, set the tunnel up, run the loop, print what happened. */
#include <ev.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "conffile.h"
#include "control.h"
#include "moontun/config.h"
#include "moontun/log.h"
#include "report.h"
#include "tunnel.h"
#include "verbs.h"

/* Gives up root once the device and sockets are open: scripts run as user. */
static int drop_privileges(const char *user, char *err, size_t errsz)
{
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        snprintf(err, errsz, "--user: no such user '%s'", user);
        return -1;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
        setuid(pw->pw_uid) < 0) {
        snprintf(err, errsz, "--user %s: cannot drop privileges: %m", user);
        return -1;
    }
    if (setuid(0) == 0) {
        snprintf(err, errsz, "--user %s: root could be regained; refusing to run", user);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct mt_config cfg;
    static struct mt_tunnel tun;
    char err[512] = "";
    /* moontun replay|test|genkey|pubkey ...: tools, not a tunnel (tools/). */
    int (*verb)(int, char **) = argc > 1 ? mt_verb_find(argv[1]) : NULL;
    if (verb != NULL)
        return verb(argc - 1, argv + 1);

    /* --config FILE: its options in front of the command line's (core/conffile.c). */
    struct mt_argv args = {0};
    int rc = mt_conffile_expand(argc, argv, &args, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "moontun: %s\n", err);
        return 2;
    }
    if (rc > 0) {
        argc = args.argc;
        argv = args.argv;
    }
    rc = mt_config_parse(&cfg, argc, argv, err, sizeof(err));
    if (rc == MT_CONFIG_EXIT || rc < 0) {
        if (rc < 0)
            fprintf(stderr, "moontun: %s\n", err);
        mt_config_free(&cfg);
        mt_argv_free(&args);
        return rc < 0 ? 2 : 0;
    }
    mt_log_level = (enum mt_log_level)cfg.log_level;
    signal(SIGPIPE, SIG_IGN); /* a closed TCP peer is an error return, not a death */

    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    if (!loop) {
        fprintf(stderr, "moontun: cannot initialise libev\n");
        return 1;
    }
    int status = 1;
    bool ran = false;
    struct mt_control *ctl = NULL;
    if (mt_tunnel_init(&tun, loop, &cfg, err, sizeof(err)) < 0 ||
        mt_tunnel_open(&tun, err, sizeof(err)) < 0 ||
        mt_control_open(&ctl, &tun, err, sizeof(err)) < 0 ||
        (cfg.user[0] && (drop_privileges(cfg.user, err, sizeof(err)) < 0 ||
                         mt_tunnel_load_scripts(&tun, err, sizeof(err)) < 0))) {
        fprintf(stderr, "moontun: %s\n", err);
    } else {
        mt_tunnel_run(&tun);
        status = tun.exit_code;
        ran = true;
    }
    mt_control_close(ctl);
    mt_tunnel_close(&tun);
    if (ran) {
        char line[1024];
        mt_report_counters(&tun.stats, line, sizeof line);
        mt_info("stopped: %s", line);
    }
    mt_config_free(&cfg);
    mt_argv_free(&args);
    ev_loop_destroy(loop);
    return status;
}
