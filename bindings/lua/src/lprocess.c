/*
** lprocess.c: corio.processes.  (Placeholder: filled in by its issue.)
*/
#include "lcorio.h"

void lcorio_process_open(lua_State *L) { (void)L; }
