#!/usr/bin/env bash
# Regenerate fsnlab/data/corpora/kjv.txt.xz, the embedded default corpus (King James Bible).
#
# Source: the Debian package `bible-kjv` (program `bible`, text from `bible-kjv-text`):
#     apt-get update && apt-get install -y bible-kjv
#
# The text is the program's normal ("pretty-printed") output for the whole Bible,
# Genesis 1:1 to Revelation 22:21, byte for byte: a blank line, the book and chapter
# ("Genesis 1"), a blank line, then one line per verse, "  <verse number> <text>".
# Nothing is stripped (the program prints no banner or prompt when not interactive).
# The only option is -l100000: a line-length limit longer than any verse (the longest line
# is 532 bytes), so verses are not wrapped at 79 columns and the output does not depend on
# $COLUMNS. The text is pure ASCII.
#
# Compression: xz -9e, single-threaded (xz stores no file name or time stamp, so the
# output is reproducible for a given xz version). Python's stdlib `lzma` reads it.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v bible >/dev/null || { echo "error: 'bible' not found; apt-get install -y bible-kjv" >&2; exit 1; }
out=fsnlab/data/corpora/kjv.txt.xz
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

env -u COLUMNS LC_ALL=C bible -l100000 gen1:1-rev22:21 </dev/null >"$tmp"

# Sanity checks: 66 books, 1189 chapters, 31102 verses, ASCII only, ends with Rev 22:21.
verses=$(grep -c '^  [0-9]\+ ' "$tmp")
chapters=$(grep -c '^[1-3A-Z][A-Za-z ]* [0-9]\+$' "$tmp")
[ "$verses" -eq 31102 ] || { echo "error: expected 31102 verses, got $verses" >&2; exit 1; }
[ "$chapters" -eq 1189 ] || { echo "error: expected 1189 chapter headings, got $chapters" >&2; exit 1; }
! LC_ALL=C grep -q -P '[^\x00-\x7f]' "$tmp" || { echo "error: non-ASCII bytes in output" >&2; exit 1; }
tail -n 1 "$tmp" | grep -q '^  21 The grace of our Lord Jesus Christ be with you all. Amen.$' \
  || { echo "error: output does not end with Revelation 22:21" >&2; exit 1; }

xz -9e -T1 -c "$tmp" >"$out"

echo "package:    bible-kjv $(dpkg-query -W -f='${Version}' bible-kjv 2>/dev/null || echo '?')," \
     "bible-kjv-text $(dpkg-query -W -f='${Version}' bible-kjv-text 2>/dev/null || echo '?')"
echo "xz:         $(xz --version | head -n 1)"
echo "text:       $(wc -c <"$tmp") bytes, $verses verses, $chapters chapters"
echo "text md5:   $(md5sum <"$tmp" | cut -d' ' -f1)"
echo "text sha256: $(sha256sum <"$tmp" | cut -d' ' -f1)"
echo "wrote $out: $(wc -c <"$out") bytes"
