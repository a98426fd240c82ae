// Connects as a Spring app would (URL, username, password from the environment) and prints
// whether the session uses SSL. Run as a single-file program: java -cp postgresql.jar SslInUse.java
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;

public class SslInUse {
    public static void main(String[] args) throws Exception {
        String prefix = args[0];
        try (Connection conn = DriverManager.getConnection(
                System.getenv(prefix + "_URL"),
                System.getenv(prefix + "_USERNAME"),
                System.getenv(prefix + "_PASSWORD"));
             ResultSet rows = conn.createStatement().executeQuery(
                "SELECT ssl, current_database() FROM pg_stat_ssl WHERE pid = pg_backend_pid()")) {
            rows.next();
            System.out.println(rows.getBoolean(1) + " " + rows.getString(2));
        }
    }
}
