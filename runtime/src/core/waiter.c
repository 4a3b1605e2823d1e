/*
** waiter.c: who is waiting for a task to be done.  Most tasks have no
** waiter or one (the task or wait set awaiting them), so `task->waiters`
** holds a single corio__waiter pointer directly and only grows into a list
** (tagged with bit 0) when a second waiter comes: a corio.wait over 100,000
** tasks allocates nothing per task.
*/
#include "core.h"

#define LIST_TAG ((uintptr_t)1)

typedef struct wnode {
  corio__waiter *w;
  struct wnode *next;
} wnode;

static int is_list(uintptr_t v) {
  return (v & LIST_TAG) != 0;
}

static wnode *list_of(uintptr_t v) {
  return (wnode *)(v & ~LIST_TAG);
}

int corio__waiter_add(corio_task *task, corio__waiter *w) {
  wnode *n, *tail;
  if (task->waiters == 0) {
    task->waiters = (uintptr_t)w;
    return 0;
  }
  n = corio__malloc(sizeof *n);
  if (n == NULL) return CORIO_ENOMEM;
  n->w = w;
  n->next = NULL;
  if (!is_list(task->waiters)) { /* grow: the single waiter becomes a node */
    wnode *first = corio__malloc(sizeof *first);
    if (first == NULL) {
      corio__free(n);
      return CORIO_ENOMEM;
    }
    first->w = (corio__waiter *)task->waiters;
    first->next = n;
    task->waiters = (uintptr_t)first | LIST_TAG;
    return 0;
  }
  for (tail = list_of(task->waiters); tail->next != NULL; tail = tail->next) {
  }
  tail->next = n;
  return 0;
}

size_t corio__waiter_remove_if(corio_task *task, corio__waiter_pred pred,
                               void *ctx) {
  size_t removed = 0;
  wnode *head, **link, *n;
  if (task->waiters == 0) return 0;
  if (!is_list(task->waiters)) {
    if (!pred((corio__waiter *)task->waiters, ctx)) return 0;
    task->waiters = 0;
    return 1;
  }
  head = list_of(task->waiters);
  link = &head;
  while ((n = *link) != NULL) {
    if (pred(n->w, ctx)) {
      *link = n->next;
      corio__free(n);
      removed++;
    } else {
      link = &n->next;
    }
  }
  task->waiters = head != NULL ? (uintptr_t)head | LIST_TAG : 0;
  return removed;
}

static int same_waiter(corio__waiter *w, void *ctx) {
  return w == ctx;
}

size_t corio__waiter_remove(corio_task *task, corio__waiter *w) {
  return corio__waiter_remove_if(task, same_waiter, w);
}

/*
** Detach the waiters first, then notify each in the order added: a waiter
** may add or remove registrations on other tasks while being notified.
*/
void corio__waiters_notify(corio_task *task) {
  uintptr_t v = task->waiters;
  wnode *n;
  task->waiters = 0;
  if (v == 0) return;
  if (!is_list(v)) {
    ((corio__waiter *)v)->notify((corio__waiter *)v, task);
    return;
  }
  n = list_of(v);
  while (n != NULL) {
    wnode *next = n->next;
    corio__waiter *w = n->w;
    corio__free(n);
    w->notify(w, task);
    n = next;
  }
}
