#!/bin/sh
# Documentation made from the programs' own --help, so it cannot drift:
#   scripts/helpdoc.sh man BINDIR PROGRAM   a man page of aloft, aloftd or aloft-node
#   scripts/helpdoc.sh md BINDIR            docs/cli.md: every page of all three
# The aloft page holds `aloft --help` and then every command's own --help.
set -eu

[ $# -ge 2 ] || { echo "usage: helpdoc.sh man BINDIR PROGRAM | md BINDIR" >&2; exit 2; }
format=$1 bin=$2

# The commands of `aloft --help`, one `GROUP [NAME]` a line. Its rows are
# "  aloft %-8s %-8s summary": the group in columns 9-16, a name from 18.
commands() {
	"$bin/aloft" --help | awk 'substr($0, 1, 8) == "  aloft " {
		group = substr($0, 9, 8); sub(/ +$/, "", group)
		name = ""
		if (substr($0, 18, 1) != " ") { split(substr($0, 18), w, " "); name = w[1] }
		print group (name == "" ? "" : " " name)
	}'
}

summary() {
	case $1 in
	aloft) echo "over-the-air updates for ESP32 devices: the command line" ;;
	aloftd) echo "the aloft update server" ;;
	aloft-node) echo "a simulated ESP32 that takes updates as a real one does" ;;
	esac
}

# Text for roff: backslashes escaped, no line taken for a request.
roff() { sed -e 's/\\/\\e/g' -e "s/^[.']/\\\\\\&&/"; }

man_page() {
	prog=$1
	version=$("$bin/$prog" --version)
	upper=$(echo "$prog" | tr a-z A-Z)
	printf '.TH %s 1 "" "%s" "User Commands"\n' "$upper" "$version"
	printf '.SH NAME\n%s \\- %s\n' "$(echo "$prog" | sed 's/-/\\-/g')" "$(summary "$prog")"
	printf '.SH DESCRIPTION\n.nf\n'
	"$bin/$prog" --help | roff
	printf '.fi\n'
	if [ "$prog" = aloft ]; then
		commands | while read -r cmd; do
			# shellcheck disable=SC2086 # the words of the command
			printf '.SH "ALOFT %s"\n.nf\n' "$(echo "$cmd" | tr a-z A-Z)"
			"$bin/aloft" $cmd --help | roff
			printf '.fi\n'
		done
	fi
	printf '.SH SEE ALSO\n'
	for other in aloft aloftd aloft-node; do
		[ "$other" = "$prog" ] || printf '.BR %s (1)\n' "$other"
	done
}

fence() { echo '```'; cat; echo '```'; }

markdown() {
	echo "# Command reference"
	echo
	echo "Every page of \`aloft\`, \`aloftd\` and \`aloft-node\`, as their \`--help\` prints it; installed, the"
	echo "same pages are the man pages aloft(1), aloftd(1) and aloft-node(1). This file is made by"
	echo "\`scripts/helpdoc.sh md build/bin > docs/cli.md\`; the CTest test \`cli_reference\` fails when"
	echo "it and the programs disagree."
	echo
	echo "## aloft"
	echo
	"$bin/aloft" --help | fence
	commands | while read -r cmd; do
		echo
		echo "### aloft $cmd"
		echo
		# shellcheck disable=SC2086
		"$bin/aloft" $cmd --help | fence
	done
	for prog in aloftd aloft-node; do
		echo
		echo "## $prog"
		echo
		"$bin/$prog" --help | fence
	done
}

case $format in
man) [ $# -eq 3 ] || { echo "helpdoc.sh man: give BINDIR and PROGRAM" >&2; exit 2; }; man_page "$3" ;;
md) markdown ;;
*) echo "helpdoc.sh: unknown format '$format' (man or md)" >&2; exit 2 ;;
esac
