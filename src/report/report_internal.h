/* SPDX-License-Identifier: MIT */
/* report_internal.h - what the files of src/report share (not report.h). */
#pragma once

#define VMW_REPORT_FALLBACK_MAX (4 * 256)

/* vmw_report_string's text for a string that is not valid UTF-8: ASCII
 * kept, every other byte U+FFFD, cut to fit buf (NUL-terminated). */
void vmw_report_utf8_fallback(const char *s, char buf[VMW_REPORT_FALLBACK_MAX]);
