//! A minimal RESP2 client, just enough for the emulator to drive its own redis-server processes
//! (AUTH, PING, CONFIG SET, ACL SETUSER, SAVE). Every call has a timeout.

use std::net::SocketAddr;
use std::time::Duration;

use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// How long one connect or one command may take.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A RESP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespValue {
    /// `+OK`.
    Simple(String),
    /// `-ERR ...`.
    Error(String),
    /// `:1`.
    Integer(i64),
    /// `$n ...` (None for `$-1`).
    Bulk(Option<Vec<u8>>),
    /// `*n ...` (None for `*-1`).
    Array(Option<Vec<RespValue>>),
}

/// A failure talking to a redis-server process.
#[derive(Debug, thiserror::Error)]
pub enum RespError {
    /// Connecting failed.
    #[error("failed to connect to redis-server at {addr}: {source}")]
    Connect {
        /// The server address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Reading or writing failed.
    #[error("failed to talk to redis-server at {addr} ({command}): {source}")]
    Io {
        /// The server address.
        addr: SocketAddr,
        /// The command being sent.
        command: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The server did not answer in time.
    #[error("redis-server at {addr} did not answer {command} within {IO_TIMEOUT:?}")]
    Timeout {
        /// The server address.
        addr: SocketAddr,
        /// The command being sent.
        command: String,
    },
    /// The reply was not valid RESP.
    #[error("redis-server at {addr} sent an invalid reply to {command}: {detail}")]
    Protocol {
        /// The server address.
        addr: SocketAddr,
        /// The command being sent.
        command: String,
        /// What was wrong.
        detail: String,
    },
    /// The server answered with an error.
    #[error("redis-server at {addr} refused {command}: {message}")]
    Server {
        /// The server address.
        addr: SocketAddr,
        /// The command being sent.
        command: String,
        /// The server's error line.
        message: String,
    },
}

impl RespError {
    /// A stable category (the variant name), for logs and metric labels.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Connect { .. } => "Connect",
            Self::Io { .. } => "Io",
            Self::Timeout { .. } => "Timeout",
            Self::Protocol { .. } => "Protocol",
            Self::Server { .. } => "Server",
        }
    }
}

/// A plain or TLS byte stream to a redis-server.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One connection to a redis-server.
pub struct RespConnection {
    addr: SocketAddr,
    stream: BufReader<Box<dyn Stream>>,
}

impl RespConnection {
    /// Connects and, if a password is given, authenticates as the default user.
    pub async fn connect(addr: SocketAddr, password: Option<&str>) -> Result<Self, RespError> {
        Self::connect_with(addr, password, None).await
    }

    /// Connects (over TLS, verifying the server against `tls`'s roots, when given) and, if a password is given,
    /// authenticates as the default user.
    pub async fn connect_with(
        addr: SocketAddr,
        password: Option<&str>,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Self, RespError> {
        let timeout = || RespError::Timeout {
            addr,
            command: "connect".to_string(),
        };
        let tcp = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| timeout())?
            .map_err(|source| RespError::Connect { addr, source })?;
        let stream: Box<dyn Stream> = match tls {
            None => Box::new(tcp),
            Some(config) => {
                let server_name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
                let connector = tokio_rustls::TlsConnector::from(config);
                let tls = tokio::time::timeout(IO_TIMEOUT, connector.connect(server_name, tcp))
                    .await
                    .map_err(|_| timeout())?
                    .map_err(|source| RespError::Connect { addr, source })?;
                Box::new(tls)
            }
        };
        let mut connection = Self {
            addr,
            stream: BufReader::new(stream),
        };
        if let Some(password) = password {
            connection.command(&["AUTH", password]).await?;
        }
        Ok(connection)
    }

    /// Sends one command and returns its reply; an error reply becomes [`RespError::Server`].
    pub async fn command(&mut self, args: &[&str]) -> Result<RespValue, RespError> {
        // Name the command (never its arguments: they can hold passwords).
        let command = args.first().copied().unwrap_or_default().to_string();
        let addr = self.addr;
        let reply = tokio::time::timeout(IO_TIMEOUT, self.round_trip(args, &command))
            .await
            .map_err(|_| RespError::Timeout {
                addr,
                command: command.clone(),
            })??;
        match reply {
            RespValue::Error(message) => Err(RespError::Server { addr, command, message }),
            other => Ok(other),
        }
    }

    async fn round_trip(&mut self, args: &[&str], command: &str) -> Result<RespValue, RespError> {
        let mut request = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            request.extend_from_slice(arg.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        let addr = self.addr;
        let io_error = |source| RespError::Io {
            addr,
            command: command.to_string(),
            source,
        };
        self.stream.get_mut().write_all(&request).await.map_err(io_error)?;
        self.read_value(command).await
    }

    async fn read_line(&mut self, command: &str) -> Result<String, RespError> {
        let mut line = String::new();
        let read = self.stream.read_line(&mut line).await.map_err(|source| RespError::Io {
            addr: self.addr,
            command: command.to_string(),
            source,
        })?;
        if read == 0 {
            return Err(self.protocol(command, "connection closed"));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }

    fn protocol(&self, command: &str, detail: &str) -> RespError {
        RespError::Protocol {
            addr: self.addr,
            command: command.to_string(),
            detail: detail.to_string(),
        }
    }

    fn read_value<'a>(
        &'a mut self,
        command: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<RespValue, RespError>> + Send + 'a>> {
        Box::pin(async move {
            let line = self.read_line(command).await?;
            let (kind, rest) = line.split_at(line.len().min(1));
            let number = |this: &Self| {
                rest.parse::<i64>()
                    .map_err(|_| this.protocol(command, &format!("bad length or integer {rest:?}")))
            };
            match kind {
                "+" => Ok(RespValue::Simple(rest.to_string())),
                "-" => Ok(RespValue::Error(rest.to_string())),
                ":" => Ok(RespValue::Integer(number(self)?)),
                "$" => {
                    let length = number(self)?;
                    if length < 0 {
                        return Ok(RespValue::Bulk(None));
                    }
                    let mut data = vec![0u8; length as usize + 2];
                    self.stream
                        .read_exact(&mut data)
                        .await
                        .map_err(|source| RespError::Io {
                            addr: self.addr,
                            command: command.to_string(),
                            source,
                        })?;
                    data.truncate(length as usize);
                    Ok(RespValue::Bulk(Some(data)))
                }
                "*" => {
                    let length = number(self)?;
                    if length < 0 {
                        return Ok(RespValue::Array(None));
                    }
                    let mut items = Vec::with_capacity(length as usize);
                    for _ in 0..length {
                        items.push(self.read_value(command).await?);
                    }
                    Ok(RespValue::Array(Some(items)))
                }
                _ => Err(self.protocol(command, &format!("unexpected reply line {line:?}"))),
            }
        })
    }
}
