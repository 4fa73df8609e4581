package cluster

import (
	"bytes"
	"log"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// memberlistLogger returns a standard logger that passes memberlist's lines
// to l. Lines tagged [DEBUG] or [INFO] go out at debug level. Lines tagged
// [WARN], [ERR] or [ERROR] and untagged lines go out at warn level.
func memberlistLogger(l *zap.Logger) *log.Logger {
	return log.New(zapLogWriter{log: l}, "", 0)
}

// zapLogWriter receives one line per Write from a log.Logger.
type zapLogWriter struct {
	log *zap.Logger
}

func (w zapLogWriter) Write(p []byte) (int, error) {
	level, text := parseMemberlistLine(p)
	if ce := w.log.Check(level, "memberlist log"); ce != nil {
		ce.Write(zap.String("text", text))
	}
	return len(p), nil
}

// parseMemberlistLine splits a memberlist line such as
// "[WARN] memberlist: Refuting a suspect message (from: x)\n" into its
// level and the text after the "memberlist: " prefix.
func parseMemberlistLine(p []byte) (zapcore.Level, string) {
	line := bytes.TrimRight(p, "\n")
	level := zapcore.WarnLevel
	if tag, rest, ok := bytes.Cut(line, []byte("] ")); ok && bytes.HasPrefix(tag, []byte("[")) {
		switch string(tag[1:]) {
		case "DEBUG", "INFO":
			level = zapcore.DebugLevel
		}
		line = rest
	}
	line = bytes.TrimPrefix(line, []byte("memberlist: "))
	return level, string(line)
}
