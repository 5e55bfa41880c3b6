/* libasound reports configuration and device errors through a variadic handler,
 * which it prints to stderr by default. Rust cannot define a variadic function,
 * so this shim formats the message and hands the finished line to Rust. */
#include <alsa/asoundlib.h>
#include <stdarg.h>
#include <stdio.h>

void chronus_alsa_error(const char *file, int line, const char *function, int err,
                        const char *message);

static void chronus_alsa_handler(const char *file, int line, const char *function,
                                 int err, const char *fmt, ...) {
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    chronus_alsa_error(file, line, function, err, message);
}

int chronus_alsa_route_errors(void) {
    return snd_lib_error_set_handler(chronus_alsa_handler);
}
