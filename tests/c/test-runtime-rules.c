/*
** test-runtime-rules.c: the rules corio.h states for the whole runtime:
** no callback inside the registering call, corio_rt_free's CORIO_EBUSY
** leaving everything as it was, done callbacks always called, the
** process-wide settings, the one HTTP character rule, and the one rounding
** of seconds to milliseconds.
*/
#include "task.h"

/*
** {==================================================================
** Done callbacks are always called
** ===================================================================
*/

static int owned_calls;

/* The record is owned by the callback, as the Lua binding's is. */
static void free_owned(corio_task *t, void *ud) {
  ASSERT(corio_task_done(t));
  owned_calls++;
  free(ud);
}

/* A done callback added to a task already done is due at the next turn;
   a runtime freed before that turn still calls it (ASan and valgrind saw
   the record leak before). */
TEST_IMPL(done_callback_due_at_free) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_task *f = corio_task_new(rt, NULL, NULL);
  owned_calls = 0;
  ASSERT_OK(corio_task_finish(f, CORIO_TASK_FINISHED));
  ASSERT_OK(corio_task_add_done(f, free_owned, malloc(16)));
  ASSERT_EQ(owned_calls, 0); /* never inside the registering call */
  RT_FREE_CLEAN(rt);
  ASSERT_EQ(owned_calls, 1);
  ASSERT_OK(corio_task_free(f));
}

static void count_call(corio_task *t, void *ud) {
  (void)t;
  ++*(int *)ud;
}

/* corio_task_remove_done removes "every registration still to run",
   those queued for the next turn included. */
TEST_IMPL(remove_done_after_done) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_task *f = corio_task_new(rt, NULL, NULL);
  int a = 0, b = 0;
  ASSERT_OK(corio_task_finish(f, CORIO_TASK_FINISHED));
  ASSERT_OK(corio_task_add_done(f, count_call, &a));
  ASSERT_OK(corio_task_add_done(f, count_call, &b));
  ASSERT_OK(corio_task_add_done(f, count_call, &a));
  ASSERT_EQ(corio_task_remove_done(f, count_call, &a), 2);
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(a, 0);
  ASSERT_EQ(b, 1);
  ASSERT_OK(corio_task_free(f));
  RT_FREE_CLEAN(rt);
}

/* }================================================================== */

/*
** {==================================================================
** corio_task_suspend with a cancel already pending
** ===================================================================
*/

typedef struct {
  int step;
  int cancels;         /* calls of op_cancel */
  int cancels_in_call; /* of those, inside corio_task_suspend */
  int in_suspend;
  int resumed_status;
  int wake_early; /* the op completes before the loop's next turn */
} susp;

static void op_cancel(corio_task *t, void *op) {
  susp *s = op;
  (void)t;
  s->cancels++;
  if (s->in_suspend) s->cancels_in_call++;
}

static void susp_resume(corio_task *t, int status) {
  susp *s = corio_task_get_data(t);
  if (s->step++ == 0) {
    ASSERT_EQ(corio_task_cancel(t), 1); /* pending while it runs */
    s->in_suspend = 1;
    ASSERT_OK(corio_task_suspend(t, op_cancel, s));
    s->in_suspend = 0;
    ASSERT_EQ(s->cancels, 0);
    ASSERT(corio_task_op(t) == s); /* still the task's until the drain */
    if (s->wake_early) ASSERT_OK(corio_task_wake(t, 0));
    return;
  }
  s->resumed_status = status;
  ASSERT(corio_task_op(t) == NULL);
  ASSERT_OK(corio_task_finish(t, CORIO_TASK_CANCELLED));
}

/* The cleanup runs from the loop, before the task is resumed with
   CORIO_ECANCELED, never inside corio_task_suspend (it did before). */
TEST_IMPL(suspend_cancel_pending) {
  corio_rt *rt = corio_rt_new(NULL);
  susp s;
  corio_task *t;
  memset(&s, 0, sizeof s);
  t = corio_task_new(rt, susp_resume, &s);
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(s.cancels_in_call, 0);
  ASSERT_EQ(s.cancels, 1);
  ASSERT_EQ(s.resumed_status, CORIO_ECANCELED);
  ASSERT_EQ(corio_task_get_state(t), CORIO_TASK_CANCELLED);
  ASSERT_OK(corio_task_free(t));
  RT_FREE_CLEAN(rt);
}

/* An op that completes (and wakes the task) before that turn was released
   by its owner: its cleanup does not run; the task still gets the
   cancellation. */
TEST_IMPL(suspend_cancel_pending_op_done) {
  corio_rt *rt = corio_rt_new(NULL);
  susp s;
  corio_task *t;
  memset(&s, 0, sizeof s);
  s.wake_early = 1;
  t = corio_task_new(rt, susp_resume, &s);
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(s.cancels, 0);
  ASSERT_EQ(s.resumed_status, CORIO_ECANCELED);
  ASSERT_OK(corio_task_free(t));
  RT_FREE_CLEAN(rt);
}

/* }================================================================== */

/*
** {==================================================================
** corio_rt_free: CORIO_EBUSY and nothing freed
** ===================================================================
*/

static int timer_calls;
static void on_timer(corio_timer *tm, void *ud) {
  (void)tm;
  (void)ud;
  timer_calls++;
}

static void on_request(corio_server *s, corio_server_req *req, void *ud) {
  (void)s;
  (void)ud;
  corio_server_respond(req, 204, NULL, 0, NULL, 0);
}

static void host_closed(uv_handle_t *h) {
  (void)h;
}

/* A handle of the host's left open on the loop the runtime owns: the loop
   cannot be closed, so corio_rt_free refuses before tearing anything down
   (before, it closed the timers and the server, then refused). */
TEST_IMPL(rt_free_busy_keeps_all) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_server *srv;
  uv_timer_t host;
  uint64_t end;
  int port;
  timer_calls = 0;
  ASSERT_OK(corio_server_listen(rt, NULL, on_request, NULL, &srv));
  port = corio_server_port(srv);
  ASSERT(port > 0);
  ASSERT_NOT_NULL(corio_timer_start(rt, 1, on_timer, NULL));
  ASSERT_OK(uv_timer_init(corio_rt_loop(rt), &host));
  ASSERT_EQ(corio_rt_free(rt), CORIO_EBUSY);
  /* all still there: the timer fires, the server is open */
  ASSERT_EQ(corio_server_port(srv), port);
  /* NOWAIT: a timer due at the start of a UV_RUN_ONCE iteration runs
     there, and the poll after it would then block (the listener keeps the
     loop alive) */
  end = corio_rt_now(rt) + 10000;
  while (timer_calls == 0 && corio_rt_now(rt) < end)
    ASSERT(corio_rt_run(rt, UV_RUN_NOWAIT) >= 0);
  ASSERT_EQ(timer_calls, 1);
  uv_close((uv_handle_t *)&host, host_closed);
  RT_FREE_CLEAN(rt); /* closes the server, runs host_closed */
}

/* A runtime borrowing the host's loop does not mind the host's handles. */
TEST_IMPL(rt_free_borrowed_loop_host_handle) {
  uv_loop_t loop;
  uv_timer_t host;
  corio_rt *rt;
  ASSERT_OK(uv_loop_init(&loop));
  ASSERT_OK(uv_timer_init(&loop, &host));
  rt = corio_rt_new(&loop);
  ASSERT_NOT_NULL(rt);
  RT_FREE_CLEAN(rt);
  uv_close((uv_handle_t *)&host, host_closed);
  ASSERT_OK(uv_run(&loop, UV_RUN_DEFAULT));
  ASSERT_OK(uv_loop_close(&loop));
}

/* }================================================================== */

/*
** {==================================================================
** Process-wide settings
** ===================================================================
*/

static void *my_malloc(size_t n) {
  return malloc(n);
}

TEST_IMPL(process_wide_settings) {
  corio_rt *rt = corio_rt_new(NULL);
  ASSERT_EQ(corio_replace_allocator(my_malloc, realloc, free), CORIO_EBUSY);
  ASSERT_EQ(corio_set_body_pool(0), CORIO_EBUSY);
  RT_FREE_CLEAN(rt);
  ASSERT_OK(corio_replace_allocator(my_malloc, realloc, free));
  ASSERT_OK(corio_set_body_pool(0));
  rt = corio_rt_new(NULL); /* made with the new allocator */
  ASSERT_NOT_NULL(rt);
  RT_FREE_CLEAN(rt);
  ASSERT_OK(corio_replace_allocator(malloc, realloc, free));
  ASSERT_OK(corio_set_body_pool(CORIO_BODY_POOL_DEFAULT));
  ASSERT_EQ(corio_replace_allocator(NULL, realloc, free), CORIO_EINVAL);
}

/* }================================================================== */

/*
** {==================================================================
** HTTP characters and seconds
** ===================================================================
*/

TEST_IMPL(http_chars) {
  static const struct {
    const char *s;
    size_t n;
    int token, value;
  } cases[] = {
      {"Content-Type", 12, 1, 1},
      {"X-a!#$%&'*+.^_`|~9", 18, 1, 1},
      {"", 0, 0, 1},
      {"a b", 3, 0, 1},
      {"a\tb", 3, 0, 1},
      {"a:b", 3, 0, 1},
      {"a\r\nb", 4, 0, 0},
      {"a\nb", 3, 0, 0},
      {"a\0b", 3, 0, 0},
      {"a\x01", 2, 0, 0},
      {"a\x7f", 2, 0, 0},
      {"caf\xc3\xa9", 5, 0, 1}, /* obs-text in a value, never a token */
      {"(x)", 3, 0, 1},
  };
  size_t i;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (corio_http_token_ok(cases[i].s, cases[i].n) != cases[i].token ||
        corio_http_value_ok(cases[i].s, cases[i].n) != cases[i].value) {
      fprintf(stderr, "case %zu\n", i);
      ASSERT(0);
    }
  }
  ASSERT_EQ(corio_http_token_ok(NULL, 0), 0);
  ASSERT_EQ(corio_http_value_ok(NULL, 0), 1);
  for (i = 0; i < 256; i++) { /* every byte against RFC 9110's lists */
    char c = (char)i;
    int tchar = (i >= '0' && i <= '9') || (i >= 'A' && i <= 'Z') ||
                (i >= 'a' && i <= 'z') ||
                (i != 0 && strchr("!#$%&'*+-.^_`|~", i) != NULL);
    int vchar = i == '\t' || (i >= 0x20 && i != 0x7f);
    ASSERT_EQ(corio_http_token_ok(&c, 1), tchar);
    ASSERT_EQ(corio_http_value_ok(&c, 1), vchar);
  }
}

/* The server follows the client's rule for header values: a control
   character other than tab is refused (before, only CR, LF and NUL were),
   and a 500 is sent instead. */
static int respond_rc = 1;
static long fetched_status;

static void bad_value_handler(corio_server *s, corio_server_req *req,
                              void *ud) {
  static const corio_server_header h[] = {{"X-Bad", 5,
                                           "a\x01"
                                           "b",
                                           3}};
  (void)s;
  (void)ud;
  respond_rc = corio_server_respond(req, 200, h, 1, "hi", 2);
}

static void on_fetched(corio_fetch *f, int status, const corio_response *res,
                       void *ud) {
  (void)f;
  ASSERT_OK(status);
  fetched_status = res->status;
  corio_server_close(ud, 0, NULL, NULL);
}

TEST_IMPL(server_header_value_rule) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_server *srv;
  corio_request req;
  corio_fetch *f;
  char url[64];
  uint64_t end;
  fetched_status = 0;
  ASSERT_OK(corio_server_listen(rt, NULL, bad_value_handler, NULL, &srv));
  snprintf(url, sizeof url, "http://127.0.0.1:%d/", corio_server_port(srv));
  corio_request_init(&req, url);
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, on_fetched, srv, &f));
  end = corio_rt_now(rt) + 10000;
  while (fetched_status == 0 && corio_rt_now(rt) < end)
    ASSERT(corio_rt_run(rt, UV_RUN_ONCE) >= 0);
  ASSERT_EQ(respond_rc, CORIO_EINVAL);
  ASSERT_EQ(fetched_status, 500);
  RT_FREE_CLEAN(rt);
}

/* Round up to the next millisecond; a positive duration is >= 1 ms. */
TEST_IMPL(seconds_to_ms) {
  ASSERT_EQ(corio_seconds_to_ms(0), 0);
  ASSERT_EQ(corio_seconds_to_ms(-1), 0);
  ASSERT_EQ(corio_seconds_to_ms(1e-9), 1);
  ASSERT_EQ(corio_seconds_to_ms(0.001), 1);
  ASSERT_EQ(corio_seconds_to_ms(0.0011), 2); /* was 1: to the nearest */
  ASSERT_EQ(corio_seconds_to_ms(1.0004), 1001);
  ASSERT_EQ(corio_seconds_to_ms(2.5), 2500);
  ASSERT_EQ(corio_seconds_to_ms(1.1), 1100); /* 1100.0000000000002 */
}

/* }================================================================== */

TEST_MAIN(TEST_ENTRY(done_callback_due_at_free)
              TEST_ENTRY(remove_done_after_done)
                  TEST_ENTRY(suspend_cancel_pending)
                      TEST_ENTRY(suspend_cancel_pending_op_done)
                          TEST_ENTRY(rt_free_busy_keeps_all)
                              TEST_ENTRY(rt_free_borrowed_loop_host_handle)
                                  TEST_ENTRY(process_wide_settings)
                                      TEST_ENTRY(http_chars)
                                          TEST_ENTRY(server_header_value_rule)
                                              TEST_ENTRY(seconds_to_ms))
