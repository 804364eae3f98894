// Test-data generator: asks the real Quartz 2.3.2 org.quartz.CronExpression what it accepts
// and when it fires, and prints the answers as JSON (tests/cron/quartz_vectors.json).
// It is not part of jobrunner; see README.md in this folder for how to run it.

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.time.LocalDate;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.time.zone.ZoneOffsetTransition;
import java.time.zone.ZoneRulesProvider;
import java.util.ArrayList;
import java.util.Date;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.TimeZone;
import org.quartz.CronExpression;
import org.quartz.core.QuartzScheduler;

public final class QuartzVectors {

    /** Fire times are printed as local time with offset: readable, and still one instant. */
    private static final DateTimeFormatter LOCAL = DateTimeFormatter.ofPattern("uuuu-MM-dd'T'HH:mm:ssXXX");

    /** A getTimeAfter call that has not returned after this long is recorded as "hang". */
    private static final long HANG_MILLIS = 2000;

    /** Where syntax-only cases are probed for fire times (shows which accepted ones work). */
    private static final String PROBE_ZONE = "UTC";
    private static final String PROBE_AFTER = "2026-01-01T00:00:00Z";
    private static final int PROBE_COUNT = 3;

    private static final String[] ZONES = {
        "UTC", "Europe/Rome", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe",
    };

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: QuartzVectors CASES_FILE > quartz_vectors.json");
            System.exit(2);
        }
        List<String> syntax = new ArrayList<>();
        List<String> fires = new ArrayList<>();
        List<String> fuzz = new ArrayList<>();
        List<String> dstFuzz = new ArrayList<>();
        int lineNo = 0;
        for (String line : Files.readAllLines(Path.of(args[0]), StandardCharsets.UTF_8)) {
            lineNo++;
            if (line.isBlank() || line.startsWith("#")) {
                continue;
            }
            String[] cols = line.split("\t", -1);
            switch (cols[0]) {
                case "syntax" -> {
                    need(cols, 2, lineNo);
                    syntax.add(probe(unescape(cols[1]), PROBE_ZONE, PROBE_AFTER, PROBE_COUNT, null));
                }
                case "fires" -> {
                    need(cols, 6, lineNo);
                    fires.add(probe(unescape(cols[4]), cols[1], cols[2], Integer.parseInt(cols[3]), cols[5]));
                }
                case "fuzz" -> {
                    need(cols, 3, lineNo);
                    Random random = new Random(Long.parseLong(cols[2]));
                    for (int i = 0; i < Integer.parseInt(cols[1]); i++) {
                        String expr = Fuzz.expression(random);
                        String zone = ZONES[random.nextInt(ZONES.length)];
                        fuzz.add(probe(expr, zone, Fuzz.instant(random, zone), 3, null));
                    }
                }
                case "dstfuzz" -> {
                    need(cols, 3, lineNo);
                    Random random = new Random(Long.parseLong(cols[2]));
                    for (int i = 0; i < Integer.parseInt(cols[1]); i++) {
                        String zone = Fuzz.DST_ZONES[random.nextInt(Fuzz.DST_ZONES.length)];
                        String after = Fuzz.nearTransition(random, zone);
                        dstFuzz.add(probe(Fuzz.timeOfDayExpression(random), zone, after, 5, null));
                    }
                }
                default -> throw new IllegalArgumentException("line " + lineNo + ": unknown kind " + cols[0]);
            }
        }
        StringBuilder out = new StringBuilder();
        out.append("{\n");
        out.append("  \"about\": ").append(json("Answers of the real Quartz CronExpression; produced by "
            + "tests/cron/generate/QuartzVectors.java from tests/cron/generate/cases.txt. Do not edit by hand."))
            .append(",\n");
        out.append("  \"quartz_version\": ").append(json(QuartzScheduler.getVersionMajor() + "."
            + QuartzScheduler.getVersionMinor() + "." + QuartzScheduler.getVersionIteration())).append(",\n");
        out.append("  \"java_version\": ").append(json(System.getProperty("java.version"))).append(",\n");
        out.append("  \"tzdb_version\": ")
            .append(json(ZoneRulesProvider.getVersions("Europe/Rome").lastKey())).append(",\n");
        out.append("  \"generated_on\": ").append(json(LocalDate.now(ZoneOffset.UTC).toString())).append(",\n");
        // CronExpression.MAX_YEAR is "this year + 100", fixed when the class loads: it bounds
        // '*' in the year field and every fire time, so the tests need the value used here.
        out.append("  \"max_year\": ").append(CronExpression.MAX_YEAR).append(",\n");
        section(out, "syntax", syntax, false);
        section(out, "fires", fires, false);
        section(out, "fuzz", fuzz, false);
        section(out, "dst_fuzz", dstFuzz, true);
        out.append("}\n");
        System.out.write(out.toString().getBytes(StandardCharsets.UTF_8));
        System.out.flush();
        System.exit(0); // a stopped evaluation thread must not keep the JVM alive
    }

    private static void need(String[] cols, int count, int lineNo) {
        if (cols.length != count) {
            throw new IllegalArgumentException("line " + lineNo + ": expected " + count + " tab-separated columns");
        }
    }

    private static void section(StringBuilder out, String name, List<String> items, boolean last) {
        out.append("  \"").append(name).append("\": [\n");
        for (int i = 0; i < items.size(); i++) {
            out.append("    ").append(items.get(i)).append(i + 1 < items.size() ? ",\n" : "\n");
        }
        out.append(last ? "  ]\n" : "  ],\n");
    }

    /** One JSON object: does Quartz accept `expr`, and if so its next `count` fires in `zone`. */
    private static String probe(String expr, String zone, String after, int count, String label) {
        ZoneId zoneId = ZoneId.of(zone); // fails loudly: TimeZone.getTimeZone would fall back to GMT
        StringBuilder o = new StringBuilder("{");
        if (label != null) {
            o.append("\"label\": ").append(json(label)).append(", ");
        }
        o.append("\"expr\": ").append(json(expr));
        CronExpression cron;
        try {
            cron = new CronExpression(expr);
        } catch (Exception e) {
            return o.append(", \"valid\": false, \"error\": ").append(json(e.getMessage())).append("}").toString();
        }
        cron.setTimeZone(TimeZone.getTimeZone(zoneId));
        o.append(", \"valid\": true, \"zone\": ").append(json(zone));
        o.append(", \"after\": ").append(json(after));
        List<String> times = new ArrayList<>();
        String outcome = chain(cron, Date.from(Instant.parse(after)), count, zoneId, times);
        o.append(", \"fires\": [");
        for (int i = 0; i < times.size(); i++) {
            o.append(i > 0 ? ", " : "").append(json(times.get(i)));
        }
        // "ok": `count` fires or a null (never again); "hang": getTimeAfter did not return;
        // anything else: the exception getTimeAfter threw.
        return o.append("], \"eval\": ").append(json(outcome)).append("}").toString();
    }

    /** Chains getTimeAfter like a scheduler does: each fire is the "after" of the next call. */
    @SuppressWarnings({"deprecation", "removal"})
    private static String chain(CronExpression cron, Date after, int count, ZoneId zone, List<String> times) {
        String[] outcome = {"ok"};
        Thread worker = new Thread(() -> {
            Date current = after;
            try {
                for (int i = 0; i < count && current != null; i++) {
                    current = cron.getTimeAfter(current);
                    times.add(current == null ? null : LOCAL.format(current.toInstant().atZone(zone)));
                }
            } catch (RuntimeException e) {
                outcome[0] = e.getClass().getName();
            }
        });
        worker.setDaemon(true);
        worker.start();
        try {
            worker.join(HANG_MILLIS);
            if (worker.isAlive()) {
                worker.stop(); // Quartz loops forever on some expressions; nothing else ends it
                worker.join();
                outcome[0] = "hang";
            }
        } catch (InterruptedException e) {
            throw new IllegalStateException(e);
        }
        // join() has returned, so the worker's writes to `times` and `outcome` are visible here.
        return outcome[0];
    }

    private static String unescape(String text) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == '\\' && i + 1 < text.length()) {
                char n = text.charAt(++i);
                switch (n) {
                    case 't' -> b.append('\t');
                    case 'n' -> b.append('\n');
                    case 's' -> b.append(' ');
                    case '\\' -> b.append('\\');
                    default -> throw new IllegalArgumentException("bad escape \\" + n + " in " + text);
                }
            } else {
                b.append(c);
            }
        }
        return b.toString();
    }

    static String json(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20 || c > 0x7e) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }

    /** Random expressions, mostly well-formed per field, with Quartz's odd corners mixed in. */
    static final class Fuzz {
        private static final String[] MONTHS = {
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        };
        private static final String[] DAYS = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};
        private static final String[] JUNK = {
            "X", "5X", "*X", "?X", "?XY", "#", "-", "/", "1-", "--", "L-", "W", "LW2", "JU", "FOO",
            "MONDAY", "JANUARY", "1-5W", "*W", "5/", "*/", "1/2/3", "1-2-3", "5-10X", "L-3X",
            "MON-FRI/2", "2-6#3", "2-6L", "SUNL#2", "1-\u0665", "*/+5", "*/-5", "0/0", ",",
        };
        private static final int[] LOW = {0, 0, 0, 1, 1, 1, 1970};
        private static final int[] HIGH = {59, 59, 23, 31, 12, 7, 2199};

        static String expression(Random r) {
            int roll = r.nextInt(40);
            int fields = roll == 0 ? 5 : roll == 1 ? 8 : roll < 21 ? 6 : 7;
            boolean domQuestion = r.nextBoolean();
            StringBuilder b = new StringBuilder();
            if (r.nextInt(30) == 0) {
                b.append(' ');
            }
            for (int f = 0; f < fields; f++) {
                if (f > 0) {
                    b.append(r.nextInt(25) == 0 ? "\t" : r.nextInt(25) == 0 ? "  " : " ");
                }
                int field = Math.min(f, 6);
                String text;
                if (field == 3 && r.nextInt(10) < 8) {
                    text = domQuestion ? "?" : list(r, field);
                } else if (field == 5 && r.nextInt(10) < 8) {
                    text = domQuestion ? list(r, field) : "?";
                } else {
                    text = list(r, field);
                }
                b.append(r.nextInt(12) == 0 ? text.toLowerCase(Locale.ROOT) : text);
            }
            return b.toString();
        }

        private static String list(Random r, int field) {
            int n = r.nextInt(10) < 8 ? 1 : 2 + r.nextInt(2);
            StringBuilder b = new StringBuilder();
            for (int i = 0; i < n; i++) {
                b.append(i > 0 ? "," : "").append(item(r, field));
            }
            return b.toString();
        }

        private static String item(Random r, int field) {
            int roll = r.nextInt(100);
            if (roll < 2) {
                return JUNK[r.nextInt(JUNK.length)];
            }
            if (roll < 4) {
                return item(r, r.nextInt(7)); // a token made for another field
            }
            if (roll < 12) {
                return "*";
            }
            if (roll < 14 && (field == 3 || field == 5 || r.nextInt(4) == 0)) {
                return "?";
            }
            if (field == 3 && roll < 40) {
                return switch (r.nextInt(6)) {
                    case 0 -> "L";
                    case 1 -> "LW";
                    case 2 -> "L-" + r.nextInt(32);
                    case 3 -> "L-" + r.nextInt(28) + "W";
                    default -> (1 + r.nextInt(31)) + "W";
                };
            }
            if (field == 5 && roll < 40) {
                String day = r.nextBoolean() ? DAYS[r.nextInt(7)] : String.valueOf(r.nextInt(9));
                return switch (r.nextInt(4)) {
                    case 0 -> "L";
                    case 1 -> day + "L";
                    default -> day + "#" + r.nextInt(7);
                };
            }
            if ((field == 4 || field == 5) && roll < 55) {
                String[] names = field == 4 ? MONTHS : DAYS;
                String a = names[r.nextInt(names.length)];
                return r.nextBoolean() ? a : a + "-" + names[r.nextInt(names.length)];
            }
            String a = number(r, field);
            return switch (r.nextInt(7)) {
                case 0, 1 -> a;
                case 2 -> a + "-" + number(r, field);
                case 3 -> a + "/" + step(r, field);
                case 4 -> "*/" + step(r, field);
                case 5 -> a + "-" + number(r, field) + "/" + step(r, field);
                default -> "/" + step(r, field);
            };
        }

        private static String number(Random r, int field) {
            int roll = r.nextInt(80);
            if (roll == 0) {
                return String.valueOf(HIGH[field] + 1);
            }
            if (roll == 1) {
                return String.valueOf(LOW[field] - (LOW[field] > 0 ? 1 : 0));
            }
            if (roll == 2) {
                return "0" + (LOW[field] + r.nextInt(HIGH[field] - LOW[field] + 1));
            }
            if (field == 6 && roll < 20) {
                return String.valueOf(2024 + r.nextInt(12));
            }
            return String.valueOf(LOW[field] + r.nextInt(HIGH[field] - LOW[field] + 1));
        }

        private static String step(Random r, int field) {
            int high = field == 6 ? 20 : r.nextInt(8) == 0 ? HIGH[field] + 2 : Math.min(HIGH[field], 15);
            return String.valueOf(r.nextInt(high + 1));
        }

        /** Zones whose clocks move: by an hour, half an hour (Lord Howe), at 02:45 (Chatham),
         *  at midnight (Santiago, Havana, Beirut, Cairo), by two hours (Troll). */
        static final String[] DST_ZONES = {
            "Europe/Rome", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham",
            "America/Santiago", "America/Havana", "Asia/Beirut", "Africa/Cairo", "Europe/Chisinau",
            "America/St_Johns", "Australia/Adelaide", "Antarctica/Troll", "Europe/London",
        };

        /** Times of day that meet DST gaps and overlaps, with each kind of day rule. */
        static String timeOfDayExpression(Random r) {
            String sec = pick(r, "0", "0", "30", "59", "*", "*/20", "0/45", values(r, 60, 2));
            String min = pick(r, "0", "30", "59", "*", "*/15", "*/10", "0/7", "15,45", "10,35",
                "44,46", values(r, 60, 2), values(r, 60, 3));
            String hour = pick(r, "*", "*", "0", "1", "2", "3", "23", "22-23", "0-4", "1,2,3",
                "23,0,1", "0,12", values(r, 24, 3));
            String days = pick(r, "* * ?", "? * *", "? * 1", "? * 7", "L * ?", "? * 1L", "? * 1#1",
                "15W * ?", "1W * ?", "LW * ?", "? * 6#5", "L-2 * ?", "1-7 * ?", "? * FRI");
            return sec + " " + min + " " + hour + " " + days;
        }

        /** A random instant up to 30 hours before a DST change (2024 to 2030) of `zone`. */
        static String nearTransition(Random r, String zone) {
            Instant from = Instant.parse("2024-01-01T00:00:00Z")
                .plusSeconds((long) (r.nextDouble() * 7 * 365 * 86400));
            ZoneOffsetTransition next = ZoneId.of(zone).getRules().nextTransition(from);
            return next.getInstant().minusSeconds(r.nextInt(30 * 3600)).toString();
        }

        private static String values(Random r, int bound, int count) {
            java.util.TreeSet<Integer> set = new java.util.TreeSet<>();
            while (set.size() < count) {
                set.add(r.nextInt(bound));
            }
            StringBuilder b = new StringBuilder();
            for (int v : set) {
                b.append(b.length() > 0 ? "," : "").append(v);
            }
            return b.toString();
        }

        private static String pick(Random r, String... choices) {
            return choices[r.nextInt(choices.length)];
        }

        /** A random instant from 2024 to 2030; often an hour or two before a DST change. */
        static String instant(Random r, String zone) {
            long start = Instant.parse("2024-01-01T00:00:00Z").getEpochSecond();
            long end = Instant.parse("2031-01-01T00:00:00Z").getEpochSecond();
            Instant at = Instant.ofEpochSecond(start + (long) (r.nextDouble() * (end - start)));
            ZoneOffsetTransition next = ZoneId.of(zone).getRules().nextTransition(at);
            if (next != null && r.nextInt(3) == 0) {
                at = next.getInstant().minusSeconds(r.nextInt(3 * 3600));
            }
            return at.toString();
        }
    }
}
