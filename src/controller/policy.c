/* SPDX-License-Identifier: MIT */
/*
 * policy.c - a small policy in oslo.policy's language.
 *
 * Rules are named expressions:
 *   expr   := term ("or" term)*
 *   term   := factor ("and" factor)*
 *   factor := "not" factor | "(" expr ")" | check
 *   check  := "@" (always) | "!" (never) | "rule:NAME" | "role:NAME"
 *           | "project_id:VALUE" | "user_id:VALUE"
 * VALUE is a literal or "%(project_id)s" (the instance's owner project).
 * Defaults below; a JSON object {"NAME": "expression"} in policy_file
 * overrides or adds rules. An expression that does not parse is refused when
 * the file is loaded (nothing half-applied); evaluation is bounded (rule
 * references nest at most 16 deep).
 */
#include "controller/ctl.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <strings.h>

struct rule { char *name, *expr; };

struct ctl_policy {
	struct rule *rules;
	size_t n;
};

static const struct rule defaults[] = {
	{ "admin", "role:admin" },
	{ "project_reader", "role:reader or role:member or role:admin" },
	{ "project_owner", "project_id:%(project_id)s" },
	{ CTL_RULE_SERVER_READ, "rule:project_owner and rule:project_reader" },
	{ CTL_RULE_SERVER_LIST, "rule:project_reader" },
	{ CTL_RULE_ALL_PROJECTS, "rule:admin" },
	{ CTL_RULE_HOST_ATTR, "rule:admin" },
	{ CTL_RULE_METRICS, "rule:admin" },
};

#define MAX_DEPTH 16

struct eval {
	const struct ctl_policy *p;
	const struct ctl_creds *creds;   /* NULL: syntax check only */
	const char *target_project;
	const char *s;                   /* cursor */
	int depth;
	bool error;
};

static void skip_ws(struct eval *e)
{
	while (isspace((unsigned char)*e->s))
		e->s++;
}

/* The next word into buf: up to a space, less the closing parentheses that
 * it does not open itself ("role:x)" is "role:x" then ")", while
 * "project_id:%(project_id)s" stays whole). */
static bool word(struct eval *e, char *buf, size_t size)
{
	size_t n = 0;
	int depth = 0;

	skip_ws(e);
	while (*e->s && !isspace((unsigned char)*e->s) && !(*e->s == ')' && depth == 0)) {
		if (n + 1 >= size) {
			e->error = true;
			return false;
		}
		depth += *e->s == '(' ? 1 : *e->s == ')' ? -1 : 0;
		buf[n++] = *e->s++;
	}
	buf[n] = '\0';
	return n > 0;
}

static bool peek_keyword(struct eval *e, const char *kw)
{
	size_t n = strlen(kw);
	skip_ws(e);
	if (strncmp(e->s, kw, n) || (e->s[n] && !isspace((unsigned char)e->s[n]) && e->s[n] != '('))
		return false;
	e->s += n;
	return true;
}

static const struct rule *lookup(const struct ctl_policy *p, const char *name)
{
	for (size_t i = p->n; i-- > 0;)   /* later rules (the file's) win */
		if (!strcmp(p->rules[i].name, name))
			return &p->rules[i];
	return NULL;
}

static bool eval_expr(struct eval *e);

static bool eval_rule(struct eval *e, const char *name)
{
	const struct rule *r = lookup(e->p, name);
	struct eval sub = *e;
	bool v;

	if (!r || e->depth >= MAX_DEPTH) {
		e->error |= e->depth >= MAX_DEPTH;
		return false;
	}
	sub.s = r->expr;
	sub.depth++;
	v = eval_expr(&sub);
	skip_ws(&sub);
	e->error |= sub.error || *sub.s;
	return v && !e->error;
}

static bool eval_check(struct eval *e)
{
	char w[160], *colon;
	const char *val, *have;

	if (!word(e, w, sizeof(w))) {
		e->error = true;
		return false;
	}
	if (!strcmp(w, "@"))
		return true;
	if (!strcmp(w, "!"))
		return false;
	if (!(colon = strchr(w, ':'))) {
		e->error = true;
		return false;
	}
	*colon = '\0';
	val = colon + 1;
	if (!*val) {
		e->error = true;   /* "role:" names nothing */
		return false;
	}
	if (!strcmp(w, "rule"))
		return e->creds ? eval_rule(e, val) : true;
	if (strcmp(w, "role") && strcmp(w, "project_id") && strcmp(w, "user_id")) {
		e->error = true;   /* unknown kind of check */
		return false;
	}
	if (!e->creds)
		return true;
	if (!strcmp(w, "role"))
		return ctl_creds_has_role(e->creds, val);
	if (!strcmp(val, "%(project_id)s") || !strcmp(val, "%(target.project_id)s"))
		val = e->target_project;
	else if (strchr(val, '%'))
		return false;   /* a target attribute this service does not have */
	have = !strcmp(w, "project_id") ? e->creds->project_id : e->creds->user_id;
	return val && *val && *have && !strcmp(have, val);
}

static bool eval_factor(struct eval *e)
{
	bool v;

	if (peek_keyword(e, "not"))
		return !eval_factor(e);
	skip_ws(e);
	if (*e->s == '(') {
		e->s++;
		v = eval_expr(e);
		skip_ws(e);
		if (*e->s != ')')
			e->error = true;
		else
			e->s++;
		return v;
	}
	return eval_check(e);
}

static bool eval_term(struct eval *e)
{
	bool v = eval_factor(e);
	while (!e->error && peek_keyword(e, "and")) {
		bool w = eval_factor(e);
		v = v && w;
	}
	return v;
}

static bool eval_expr(struct eval *e)
{
	bool v = eval_term(e);
	while (!e->error && peek_keyword(e, "or")) {
		bool w = eval_term(e);
		v = v || w;
	}
	return v;
}

bool ctl_policy_check(const struct ctl_policy *p, const char *name, const struct ctl_creds *creds,
		      const char *target_project)
{
	struct eval e = { .p = p, .creds = creds, .target_project = target_project };
	return creds && eval_rule(&e, name) && !e.error;
}

static int add(struct ctl_policy *p, const char *name, const char *expr)
{
	struct rule *nr = realloc(p->rules, (p->n + 1) * sizeof(*nr));
	if (!nr)
		return -ENOMEM;
	p->rules = nr;
	nr[p->n].name = strdup(name);
	nr[p->n].expr = strdup(expr);
	if (!nr[p->n].name || !nr[p->n].expr) {
		free(nr[p->n].name);
		free(nr[p->n].expr);
		return -ENOMEM;
	}
	p->n++;
	return 0;
}

void ctl_policy_free(struct ctl_policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++) {
		free(p->rules[i].name);
		free(p->rules[i].expr);
	}
	free(p->rules);
	free(p);
}

static int syntax_ok(const struct ctl_policy *p, const char *name, const char *expr, struct vmw_error *err)
{
	struct eval e = { .p = p, .s = expr };
	eval_expr(&e);
	skip_ws(&e);
	if (e.error || *e.s)
		return vmw_error_set(err, -EINVAL, "policy rule '%s': cannot parse '%s' near '%.20s'", name, expr, e.s);
	return 0;
}

static struct ctl_policy *with_defaults(void)
{
	struct ctl_policy *p = calloc(1, sizeof(*p));
	for (size_t i = 0; p && i < ARRAY_SIZE(defaults); i++)
		if (add(p, defaults[i].name, defaults[i].expr) < 0) {
			ctl_policy_free(p);
			return NULL;
		}
	return p;
}

struct ctl_policy *ctl_policy_from_json(const char *text, struct vmw_error *err)
{
	struct ctl_policy *p = with_defaults();
	json_error_t je;
	json_t *j = NULL, *v;
	const char *k;

	if (!p) {
		vmw_error_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	if (text) {
		if (!(j = json_loads(text, JSON_REJECT_DUPLICATES, &je)) || !json_is_object(j)) {
			vmw_error_set(err, -EINVAL, "policy: not a JSON object of rules (%s, line %d)", je.text, je.line);
			goto fail;
		}
		json_object_foreach(j, k, v) {
			if (!json_is_string(v)) {
				vmw_error_set(err, -EINVAL, "policy rule '%s': not a string", k);
				goto fail;
			}
			/* "" means "always" in oslo.policy. */
			if (syntax_ok(p, k, *json_string_value(v) ? json_string_value(v) : "@", err) < 0 ||
			    add(p, k, *json_string_value(v) ? json_string_value(v) : "@") < 0)
				goto fail;
		}
		json_decref(j);
	}
	return p;
fail:
	json_decref(j);
	ctl_policy_free(p);
	return NULL;
}

struct ctl_policy *ctl_policy_new(const char *path, struct vmw_error *err)
{
	_cleanup_fclose_ FILE *f = NULL;
	_cleanup_free_ char *buf = NULL;
	size_t n;

	if (!path)
		return ctl_policy_from_json(NULL, err);
	if (!(f = fopen(path, "re"))) {
		vmw_error_set(err, -errno, "policy_file %s: %s", path, strerror(errno));
		return NULL;
	}
	if (!(buf = calloc(1, 1 << 20))) {
		vmw_error_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	struct ctl_policy *p = ctl_policy_from_json(buf, err);
	if (!p)
		vmw_error_prefix(err, "%s: ", path);
	return p;
}
