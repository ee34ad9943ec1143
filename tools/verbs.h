/* Verbs: a first word on moontun's command line that runs a tool instead of a tunnel
 * (moontun replay ..., moontun test ...). Each lives in its own file under tools/. */
#ifndef MOONTUN_TOOLS_VERBS_H
#define MOONTUN_TOOLS_VERBS_H

/* The verb's main for word, or NULL when word is not a verb (then it is a tunnel flag). */
int (*mt_verb_find(const char *word))(int argc, char **argv);

int mt_replay_main(int argc, char **argv); /* tools/replay.c */
int mt_test_main(int argc, char **argv);   /* tools/test.c */
/* tools/ctl.c: clients of a running tunnel's control socket */
int mt_show_main(int argc, char **argv);
int mt_metrics_main(int argc, char **argv);
int mt_reload_main(int argc, char **argv);
int mt_peer_main(int argc, char **argv);
/* A connected socket to the instance at path (what: its IFNAME for the message, or NULL), or
 * -1 after printing why (no instance, not its user). */
int mt_ctl_connect(const char *path, const char *what);
int mt_capture_main(int argc, char **argv); /* tools/capture.c */
int mt_call_main(int argc, char **argv);

#endif
