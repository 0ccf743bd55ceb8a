/* args.c — command-line parsing shared by every kb command. */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static volatile sig_atomic_t cli_interrupted;

static void cli_on_interrupt(int sig)
{
    (void)sig;
    cli_interrupted = 1;
}

const volatile int *cli_catch_interrupts(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = cli_on_interrupt;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    return &cli_interrupted;
}

int cli_is_gguf(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && !strcasecmp(name + n - 5, ".gguf");
}

const char *cli_parse_size(const char *value, size_t min, size_t max, size_t *out)
{
    static char msg[96];
    char *end;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (!*value || *end || errno || value[0] == '-' || v < min || v > max) {
        snprintf(msg, sizeof msg, "'%s' is not a number from %zu to %zu", value, min, max);
        return msg;
    }
    *out = (size_t)v;
    return NULL;
}

static const struct cli_opt *args_find_long(const struct cli_opt *opts, const char *name,
                                            size_t len)
{
    for (; opts && opts->name; opts++)
        if (strlen(opts->name) == len && !strncmp(opts->name, name, len))
            return opts;
    return NULL;
}

static const struct cli_opt *args_find_short(const struct cli_opt *opts, char c)
{
    for (; opts && opts->name; opts++)
        if (opts->short_name == c)
            return opts;
    return NULL;
}

int cli_verbosity(const char *arg)
{
    if (!strcmp(arg, "--verbose"))
        return 1;
    size_t n = arg[0] == '-' ? strspn(arg + 1, "v") : 0;
    return n && !arg[1 + n] ? (int)n : 0;
}

/* Options every command accepts after its name. Returns 1 when `arg` was one of them. */
static int args_common(struct cli *cli, const char *arg, int *help)
{
    if (!strcmp(arg, "--json")) cli->json = 1;
    else if (!strcmp(arg, "-q") || !strcmp(arg, "--quiet")) cli->quiet = 1;
    else if (cli_verbosity(arg)) cli->verbose += cli_verbosity(arg);
    else if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) *help = 1;
    else return 0;
    return 1;
}

static int args_apply(const char *cmd, const struct cli_opt *opt, const char *shown,
                      const char *value, cli_opt_fn on_opt, void *payload)
{
    const char *msg = on_opt(opt->id, value, payload);
    if (msg) {
        cli_usage_error(cmd, "%s: %s", shown, msg);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

int cli_parse(struct cli *cli, const char *cmd, const struct cli_opt *opts, int argc,
              char **argv, cli_opt_fn on_opt, void *payload, char **pos, int *n_pos,
              int *help)
{
    *n_pos = 0;
    *help = 0;
    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (only_pos || arg[0] != '-' || !arg[1]) {
            pos[(*n_pos)++] = argv[i];
            continue;
        }
        if (!strcmp(arg, "--")) {
            only_pos = 1;
            continue;
        }
        if (args_common(cli, arg, help))
            continue;
        const struct cli_opt *opt;
        const char *value = NULL;
        if (arg[1] == '-') {
            const char *eq = strchr(arg + 2, '=');
            size_t len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
            opt = args_find_long(opts, arg + 2, len);
            if (opt && eq && !opt->has_arg) {
                cli_usage_error(cmd, "--%s takes no value", opt->name);
                return CLI_EXIT_USAGE;
            }
            value = eq ? eq + 1 : NULL;
        } else {
            opt = args_find_short(opts, arg[1]);
            value = opt && opt->has_arg && arg[2] ? arg + 2 : NULL;
            if (opt && !opt->has_arg && arg[2])
                opt = NULL;
        }
        if (!opt) {
            cli_usage_error(cmd, "unknown option '%s'", arg);
            return CLI_EXIT_USAGE;
        }
        if (opt->has_arg == 1 && !value) { /* 2: the value is optional, given only as --x=v */
            if (i + 1 >= argc) {
                cli_usage_error(cmd, "%s needs a value", arg);
                return CLI_EXIT_USAGE;
            }
            value = argv[++i];
        }
        int rc = args_apply(cmd, opt, arg, value, on_opt, payload);
        if (rc)
            return rc;
    }
    return 0;
}

const char *cli_parse_mode(const char *value, kb_mode *out)
{
    if (!strcmp(value, "bm25"))
        *out = KB_MODE_BM25;
    else if (!strcmp(value, "vector"))
        *out = KB_MODE_VECTOR;
    else if (!strcmp(value, "hybrid"))
        *out = KB_MODE_HYBRID;
    else
        return "expected bm25, vector or hybrid";
    return NULL;
}

char *cli_path_filter(const char *value)
{
    char cwd[4096];
    int rel = value[0] != '/';
    if (rel && !getcwd(cwd, sizeof cwd))
        return NULL;
    struct stat st;
    int folder = !strpbrk(value, "*?[") && stat(value, &st) == 0 && S_ISDIR(st.st_mode);
    size_t len = (rel ? strlen(cwd) + 1 : 0) + strlen(value) + 3;
    char *out = malloc(len);
    if (!out)
        return NULL;
    snprintf(out, len, "%s%s%s%s", rel ? cwd : "", rel ? "/" : "", value,
             folder ? (value[strlen(value) - 1] == '/' ? "*" : "/*") : "");
    return out;
}

/* A time in 0..KB_TIME_MAX into *out, else the message for the user. */
static const char *cli_time_in_range(long long t, int64_t *out)
{
    if (t < 0 || t > KB_TIME_MAX)
        return "out of range: a time from 1970-01-01 to 2262-04-11 (Unix seconds 0 to "
               "9223372036)";
    *out = (int64_t)t;
    return NULL;
}

const char *cli_parse_time(const char *value, int64_t *out)
{
    char *end;
    errno = 0;
    long long n = strtoll(value, &end, 10);
    if (errno == ERANGE || (*value && end != value && n > KB_TIME_MAX))
        return cli_time_in_range(-1, out);
    if (*value && end != value && !strcmp(end, "d") && n >= 0)
        return cli_time_in_range((long long)time(NULL) - n * 86400, out);
    if (*value && !*end && n >= 0)
        return cli_time_in_range(n, out);
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int y, mo, d, h = 0, mi = 0, sec = 0, used = 0, used2 = 0;
    if (sscanf(value, "%4d-%2d-%2d%n", &y, &mo, &d, &used) != 3 ||
        (value[used] && (sscanf(value + used, "T%2d:%2d%n", &h, &mi, &used2) != 2 ||
                         (value[used + used2] &&
                          sscanf(value + used + used2, ":%2d", &sec) != 1))) ||
        mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return "expected a date (2026-11-28, 2026-11-28T14:30), Unix seconds, or days ago (7d)";
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    return cli_time_in_range((long long)timegm(&tm), out);
}

char *cli_join_words(char **words, int n)
{
    size_t len = 1;
    for (int i = 0; i < n; i++)
        len += strlen(words[i]) + 1;
    char *text = malloc(len), *p = text;
    if (!text)
        return NULL;
    for (int i = 0; i < n; i++) {
        size_t w = strlen(words[i]);
        if (i)
            *p++ = ' ';
        memcpy(p, words[i], w);
        p += w;
    }
    *p = '\0';
    return text;
}
