import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;

/**
 * A JDBC client through the gateway: a prepared statement executed several times, server-side
 * prepared from the first execution (prepareThreshold=1) with pgjdbc's binary transfer for the
 * types it reads in binary (int4, uuid, date). Prints one line per row.
 */
public class JdbcMasking {
  public static void main(String[] args) throws Exception {
    try (Connection c = DriverManager.getConnection(args[0], args[1], args[2])) {
      try (PreparedStatement ps = c.prepareStatement("SELECT id, email, age, token, born, card, lower(email) AS x FROM sluice_mask_customers WHERE id = ?")) {
        for (int i = 0; i < 6; i++) {
          ps.setInt(1, 1);
          try (ResultSet rs = ps.executeQuery()) {
            while (rs.next()) {
              System.out.println(rs.getInt(1) + "|" + rs.getString(2) + "|" + rs.getInt(3) + "|" + rs.getObject(4) + "|" + rs.getObject(5) + "|" + rs.getString(6) + "|" + rs.getString(7));
            }
          }
        }
      }
    }
  }
}
