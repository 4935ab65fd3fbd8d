//! `Postfix`: a private instance of Debian's Postfix in a temporary folder,
//! listening on a loopback port and relaying the demo service's domain to
//! the daemon under test with the main.cf and master.cf lines of README's
//! "Behind Postfix" section. The test starts it and `Drop` stops it (by the
//! instance's own master); nothing of the system's Postfix is touched.
//!
//! Postfix's master runs as root, so these tests need root and Debian's
//! `postfix` package; tests/it/postfix.rs is `#[ignore]`d for that, and
//! .ci/run installs the package. Customers reach the instance from loopback
//! addresses of their own (127.x.y.z, which Linux routes to `lo` without
//! any set-up), so with `smtpd_peername_lookup = no` each is a distinct
//! client without a reverse DNS wait. Retries are seconds apart, so a
//! message deferred by mistake still ends the test quickly, and counted.

use super::app::SUPPORT;
use super::{Reply, SmtpClient};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

/// How long Postfix may take to deliver everything a test sent it.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(60);

/// The transport README names, and the line that makes it an SMTP client.
const TRANSPORT: &str = "registrar";

/// Final and temporary delivery results, counted from Postfix's log lines
/// for our transport (`status=sent`, `status=deferred`, `status=bounced`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Statuses {
    pub sent: usize,
    pub deferred: usize,
    pub bounced: usize,
}

/// How the instance relays to the daemon.
#[derive(Debug, Clone, Copy)]
pub struct Relaying {
    /// The daemon's SMTP listener.
    pub next_hop: SocketAddr,
    /// `smtp_send_xforward_command = yes` on the transport.
    pub xforward: bool,
}

/// A running private Postfix instance.
pub struct Postfix {
    /// Where customers connect.
    pub addr: SocketAddr,
    dir: TempDir,
}

impl Postfix {
    /// Writes the instance's configuration and starts it on a free port.
    pub fn start(relaying: Relaying) -> Self {
        assert_eq!(
            Command::new("id")
                .arg("-u")
                .output()
                .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
                .ok()
                .as_deref(),
            Some("0"),
            "Postfix's master runs as root: run the Postfix tests as root"
        );
        let mut last_error = String::new();
        // A free port can be taken between our probe and Postfix's bind:
        // try again on another.
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("registrar-postfix.")
                .tempdir()
                .expect("a temp dir");
            let port = free_port();
            let postfix = Self {
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                dir,
            };
            postfix.configure(relaying);
            match postfix.postfix(&["start"]) {
                Ok(()) if postfix.listening() => return postfix,
                Ok(()) => last_error = "it did not listen".into(),
                Err(error) => last_error = error,
            }
            last_error.push_str(&format!("\n{}", postfix.log()));
        }
        panic!("the private Postfix did not start: {last_error}");
    }

    /// Postfix's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("log/maillog")).unwrap_or_default()
    }

    /// Delivery results to the support address so far (bounce notices to
    /// customers are left out).
    pub fn statuses(&self) -> Statuses {
        let mut statuses = Statuses::default();
        let ours = format!(" to=<{SUPPORT}>,");
        for line in self.log().lines().filter(|line| line.contains(&ours)) {
            if line.contains(" status=sent ") {
                statuses.sent += 1;
            } else if line.contains(" status=deferred ") {
                statuses.deferred += 1;
            } else if line.contains(" status=bounced ") {
                statuses.bounced += 1;
            }
        }
        statuses
    }

    /// Waits until `messages` deliveries ended (sent or bounced) and
    /// returns the counts, deferrals included.
    pub async fn wait_for_deliveries(&self, messages: usize) -> Statuses {
        let start = tokio::time::Instant::now();
        loop {
            let statuses = self.statuses();
            if statuses.sent + statuses.bounced >= messages {
                return statuses;
            }
            assert!(
                start.elapsed() < DELIVERY_DEADLINE,
                "Postfix delivered {statuses:?} of {messages} in time; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A customer's mail server hands Postfix one message: it connects from
    /// `client` (a loopback address), says `helo`, and sends `raw` from
    /// `sender` to `recipient`. Returns Postfix's answer at end of DATA (or
    /// the first refusal).
    pub async fn submit(
        &self,
        client: IpAddr,
        helo: &str,
        sender: &str,
        recipient: &str,
        raw: &[u8],
    ) -> Reply {
        let (mut smtp, greeting) = SmtpClient::connect_from(self.addr, client)
            .await
            .expect("connect to Postfix");
        greeting.assert_code(220);
        for line in [
            format!("EHLO {helo}"),
            format!("MAIL FROM:<{sender}>"),
            format!("RCPT TO:<{recipient}>"),
        ] {
            let reply = smtp.command(&line).await.expect("Postfix answers");
            if reply.code != 250 {
                return reply;
            }
        }
        smtp.command("DATA")
            .await
            .expect("Postfix answers")
            .assert_code(354);
        let reply = smtp.send_body(raw).await.expect("Postfix answers");
        let _ = smtp.command("QUIT").await;
        reply
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// The instance's main.cf and master.cf: its own folders and port,
    /// then README's lines for relaying to the daemon.
    fn configure(&self, relaying: Relaying) {
        let root = self.dir.path();
        // Postfix's processes (user postfix) walk into the queue.
        set_mode(root, 0o755);
        for folder in ["etc", "spool", "data", "log"] {
            std::fs::create_dir_all(root.join(folder)).expect("create a folder");
        }
        let owned = Command::new("chown")
            .args(["postfix:postfix"])
            .arg(root.join("data"))
            .status()
            .expect("run chown");
        assert!(owned.success(), "no user postfix: apt-get install postfix");
        let root = root.display();
        let Relaying { next_hop, xforward } = relaying;
        let main_cf = format!(
            "# The private instance: its own folders, port and log.
compatibility_level = 3.6
config_directory = {root}/etc
queue_directory = {root}/spool
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.helpdesk.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.1/32
local_recipient_maps =
alias_maps =
alias_database =
biff = no
smtputf8_enable = no
maillog_file_prefixes = {root}/log
maillog_file = {root}/log/maillog
# Customers come from many 127.x.y.z addresses: no reverse DNS for each.
smtpd_peername_lookup = no
smtpd_recipient_restrictions = reject_unauth_destination
# Nothing else leaves the test (bounces to customers included).
default_transport = discard:test
# A message deferred by mistake is retried within seconds, and counted.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
in_flow_delay = 0

# README, Behind Postfix: the support domain goes to registrar.
relay_domains = helpdesk.example
relay_recipient_maps = inline:{{ support@helpdesk.example=ok }}
transport_maps = inline:{{ helpdesk.example={TRANSPORT}:[{ip}]:{port} }}
{TRANSPORT}_destination_concurrency_limit = 20
",
            ip = next_hop.ip(),
            port = next_hop.port(),
        );
        let xforward_option = if xforward {
            "\n  -o smtp_send_xforward_command=yes"
        } else {
            ""
        };
        let master_cf = format!(
            "127.0.0.1:{port} inet n - n - - smtpd
# README, Behind Postfix: the transport to registrar.
{TRANSPORT} unix  -       -       n       -       -       smtp{xforward_option}
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
",
            port = self.addr.port(),
        );
        std::fs::write(self.path("etc/main.cf"), main_cf).expect("write main.cf");
        std::fs::write(self.path("etc/master.cf"), master_cf).expect("write master.cf");
    }

    /// Runs `postfix -c <our etc> ARGS`.
    fn postfix(&self, args: &[&str]) -> Result<(), String> {
        // Debian installs it in /usr/sbin, which a user's PATH may lack.
        let binary = if Path::new("/usr/sbin/postfix").exists() {
            "/usr/sbin/postfix"
        } else {
            "postfix"
        };
        let output = Command::new(binary)
            .arg("-c")
            .arg(self.path("etc"))
            .args(args)
            .output()
            .map_err(|error| format!("cannot run postfix ({error}): apt-get install postfix"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "postfix {args:?} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    /// Whether the instance accepts connections, within a few seconds.
    fn listening(&self) -> bool {
        (0..100).any(|_| {
            let up = TcpStream::connect_timeout(&self.addr, Duration::from_millis(100)).is_ok();
            if !up {
                std::thread::sleep(Duration::from_millis(50));
            }
            up
        })
    }

    /// The instance's master process, while it runs.
    fn master(&self) -> Option<u32> {
        std::fs::read_to_string(self.path("spool/pid/master.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Postfix {
    /// Stops this instance (its master stops its children) and waits for
    /// the master to be gone before the folder is removed.
    fn drop(&mut self) {
        let master = self.master();
        let _ = self.postfix(&["stop"]);
        let Some(pid) = master else { return };
        let alive = || Path::new(&format!("/proc/{pid}")).exists();
        for _ in 0..100 {
            if !alive() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.postfix(&["abort"]);
    }
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .expect("set the folder's mode");
}
