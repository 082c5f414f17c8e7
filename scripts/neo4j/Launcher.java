// kgsynth: a local, embedded Neo4j 5.26 Community server with a Bolt connector.
//
// Run as a single-file source program (no build step), normally via scripts/neo4j-local:
//
//   NEO4J_PASSWORD=... java -cp '.local/neo4j/lib/*' scripts/neo4j/Launcher.java DIR PORT [key=value ...]
//
// DIR   the server's home directory (data/, logs/ and the generated conf/ live under it)
// PORT  the Bolt port; the connector listens on 127.0.0.1 only
// key=value  optional Neo4j settings that override the defaults below
//            (e.g. server.memory.pagecache.size=1g); unknown names are rejected.
//
// Authentication is enabled. After start the `neo4j` user's password is set to the
// value of the NEO4J_PASSWORD environment variable (ALTER USER on the system database,
// which the embedded API may run without logging in), so Bolt clients must log in as
// neo4j / $NEO4J_PASSWORD. The password is read from the environment, never argv, so it
// does not show in `ps`. Passwords shorter than Neo4j's usual 8-character minimum are
// accepted here (the minimum is lowered to the password's length) since this server only
// listens on loopback; the docker-compose Neo4j keeps the 8-character rule.
//
// Prints exactly one line starting with "KGSYNTH-NEO4J READY" once Bolt accepts
// connections, then blocks. SIGTERM/SIGINT run a shutdown hook that shuts the
// DatabaseManagementService down cleanly and prints "KGSYNTH-NEO4J STOPPED".

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;

public class Launcher {

    /** Defaults tuned for write throughput on a small (2-core) development box. */
    static Map<String, String> defaults(int port) {
        Map<String, String> s = new LinkedHashMap<>();
        s.put("server.bolt.enabled", "true");
        s.put("server.bolt.listen_address", "127.0.0.1:" + port);
        s.put("server.bolt.advertised_address", "127.0.0.1:" + port);
        s.put("server.bolt.tls_level", "DISABLED");
        s.put("dbms.security.auth_enabled", "true");
        // Page cache: the 100k-node / 300k-relationship benchmark store (~200 MB) fits with room
        // to spare; 1g measured no faster.
        s.put("server.memory.pagecache.size", "512m");
        // Transaction logs: a dev server needs no point-in-time history; keep the last two files.
        s.put("db.tx_log.rotation.retention_policy", "2 files");
        s.put("db.tx_log.rotation.size", "256m");
        // Community checkpoints only on a timer (or every 100k transactions); bulk loads write
        // ~1 GB of transaction log per 400k entities, and logs are pruned only at checkpoints,
        // so checkpoint every 5 minutes instead of 15 to bound disk use and recovery time.
        s.put("db.checkpoint.interval.time", "5m");
        // Let checkpoints flush at full speed instead of being throttled to 600 IOPS.
        s.put("db.checkpoint.iops.limit", "-1");
        // No anonymous usage reports (UDC) from a development/test server.
        s.put("dbms.usage_report.enabled", "false");
        // Stop in ~1 s instead of ~11 s: the Bolt server otherwise waits 5 s for its thread
        // pool and 5 s of Netty quiet period even with no clients (internal settings of 5.26).
        s.put("internal.server.bolt.thread_pool_shutdown_wait_time", "1s");
        s.put("internal.server.bolt.connection_shutdown_wait_time", "1s");
        s.put("internal.dbms.bolt.netty_server_shutdown_quiet_period", "0");
        return s;
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: Launcher DIR PORT [key=value ...]   (password from env NEO4J_PASSWORD)");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        int port = Integer.parseInt(args[1]);
        String password = System.getenv("NEO4J_PASSWORD");
        if (password == null || password.isEmpty()) {
            System.err.println("KGSYNTH-NEO4J ERROR NEO4J_PASSWORD is not set");
            System.exit(2);
        }

        Map<String, String> settings = defaults(port);
        for (int i = 2; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            if (eq <= 0) {
                System.err.println("KGSYNTH-NEO4J ERROR bad setting (want key=value): " + args[i]);
                System.exit(2);
            }
            settings.put(args[i].substring(0, eq).trim(), args[i].substring(eq + 1).trim());
        }
        // A password must satisfy the minimum length before ALTER USER accepts it.
        settings.putIfAbsent("dbms.security.auth_minimum_password_length",
                String.valueOf(Math.max(1, Math.min(8, password.length()))));

        Path conf = writeConf(home, settings);
        long t0 = System.nanoTime();
        DatabaseManagementService dbms;
        try {
            dbms = new DatabaseManagementServiceBuilder(home).loadPropertiesFromFile(conf).build();
        } catch (Throwable t) {
            System.err.println("KGSYNTH-NEO4J ERROR could not start: " + t);
            t.printStackTrace();
            System.exit(1);
            return;
        }
        final DatabaseManagementService service = dbms;
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("KGSYNTH-NEO4J STOPPING");
            System.out.flush();
            try {
                service.shutdown();
                System.out.println("KGSYNTH-NEO4J STOPPED");
            } catch (Throwable t) {
                System.out.println("KGSYNTH-NEO4J ERROR during shutdown: " + t);
            }
            System.out.flush();
        }, "kgsynth-neo4j-shutdown"));

        try {
            GraphDatabaseService system = service.database("system");
            setPassword(system, password);
            String version = system.executeTransactionally(
                    "CALL dbms.components() YIELD versions, edition RETURN versions[0] AS v, edition AS e",
                    Map.of(), r -> {
                        Map<String, Object> row = r.next();
                        return row.get("v") + " edition=" + row.get("e");
                    });
            long ms = (System.nanoTime() - t0) / 1_000_000;
            System.out.println("KGSYNTH-NEO4J READY bolt://127.0.0.1:" + port + " version=" + version
                    + " home=" + home + " startup_ms=" + ms + " pid=" + ProcessHandle.current().pid());
            System.out.flush();
        } catch (Throwable t) {
            System.err.println("KGSYNTH-NEO4J ERROR after start: " + t);
            t.printStackTrace();
            System.exit(1); // runs the shutdown hook
        }
        Thread.currentThread().join(); // until SIGTERM / SIGINT
    }

    static void setPassword(GraphDatabaseService system, String password) {
        try {
            system.executeTransactionally(
                    "ALTER USER neo4j SET PASSWORD $pw CHANGE NOT REQUIRED", Map.of("pw", password));
        } catch (RuntimeException e) {
            // Restart with unchanged password: Neo4j refuses to "change" it to the same value.
            String msg = String.valueOf(e.getMessage()) + " " + String.valueOf(e.getCause());
            if (!msg.contains("cannot be the same")) {
                throw e;
            }
        }
    }

    static Path writeConf(Path home, Map<String, String> settings) throws IOException {
        Path dir = home.resolve("conf");
        Files.createDirectories(dir);
        StringBuilder sb = new StringBuilder("# generated by scripts/neo4j/Launcher.java on every start; edits are overwritten\n");
        settings.forEach((k, v) -> sb.append(k).append('=').append(v).append('\n'));
        Path conf = dir.resolve("neo4j.conf");
        Files.writeString(conf, sb.toString(), StandardCharsets.UTF_8);
        return conf;
    }
}
