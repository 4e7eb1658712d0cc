//! The HTTP/1.1 wire format of the proxy's upstream side (RFC 9112): a
//! request head written out, a response head parsed, and the framing of the
//! response body (a length, chunks, or up to the connection's close).
//!
//! The proxy speaks to its upstreams itself rather than through hyper's
//! client: a request then writes to and reads from its connection directly,
//! with no connection task, channel or wake-up between them, which was a
//! third of the proxy's user-space time per request.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::uri::PathAndQuery;
use hyper::{Method, StatusCode};

/// The most a response head may take.
const MAX_HEAD: usize = 64 * 1024;
/// The most header lines a response head may have.
const MAX_HEADERS: usize = 128;

/// An upstream's answer that is not HTTP/1.1 as the proxy can pass it on.
#[derive(Debug, thiserror::Error)]
#[error("the upstream's answer is malformed: {0}")]
pub struct ProtocolError(pub &'static str);

/// How a request body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFraming {
    /// `Content-Length` (none when the length is 0 and the client sent none).
    Length(u64),
    /// `Transfer-Encoding: chunked`, for a body of unknown length.
    Chunked,
}

/// What a request sends besides its body.
pub struct RequestHead<'a> {
    /// Its method.
    pub method: &'a Method,
    /// Its path and query at the upstream.
    pub path: &'a PathAndQuery,
    /// Its end-to-end header fields (any `Host` and `Content-Length` among
    /// them are left out: the sending writes its own).
    pub headers: &'a HeaderMap,
    /// Fields of `headers` to leave out.
    pub dropped: &'a [HeaderName],
    /// Fields that replace any of the same name in `headers`.
    pub added: &'a [(HeaderName, HeaderValue)],
    /// The credential's field, which replaces any of its name too.
    pub credential: (&'a HeaderName, &'a HeaderValue),
}

impl RequestHead<'_> {
    fn leaves_out(&self, name: &HeaderName) -> bool {
        name == header::CONTENT_LENGTH
            || name == header::HOST
            || name == self.credential.0
            || self.dropped.contains(name)
            || self.added.iter().any(|(added, _)| added == name)
    }
}

/// Writes a request head to `out`: the request line, `Host`, the header
/// fields, and the one `framing` calls for.
pub fn write_request_head(
    out: &mut Vec<u8>,
    head: &RequestHead<'_>,
    host: &HeaderValue,
    framing: RequestFraming,
) {
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.path.as_str().as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    write_field(out, &header::HOST, host);
    for (name, value) in head.headers {
        if !head.leaves_out(name) {
            write_field(out, name, value);
        }
    }
    for (name, value) in head.added {
        write_field(out, name, value);
    }
    write_field(out, head.credential.0, head.credential.1);
    match framing {
        RequestFraming::Length(0) if !head.headers.contains_key(header::CONTENT_LENGTH) => {}
        RequestFraming::Length(length) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(length.to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        RequestFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

fn write_field(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    /// Its status.
    pub status: StatusCode,
    /// Its header fields.
    pub headers: HeaderMap,
    /// Whether the upstream keeps the connection open after this response.
    pub keep_alive: bool,
}

/// Parses a response head from the start of `buffer`, consuming it; `None`
/// while it is incomplete.
pub fn parse_response_head(buffer: &mut BytesMut) -> Result<Option<ResponseHead>, ProtocolError> {
    // Left uninitialised: filling 128 empty lines first cost each response
    // a 4 KiB write.
    let mut lines = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buffer,
        &mut lines,
    );
    let length = match parsed {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) if buffer.len() >= MAX_HEAD => {
            return Err(ProtocolError("its head is over 64 KiB"));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ProtocolError("too many header fields")),
        Err(_) => return Err(ProtocolError("its head cannot be parsed")),
    };
    let status = response.code.and_then(|code| StatusCode::from_u16(code).ok());
    let status = status.ok_or(ProtocolError("its status code is invalid"))?;
    let mut headers = HeaderMap::with_capacity(response.headers.len());
    for line in response.headers.iter() {
        let name = HeaderName::from_bytes(line.name.as_bytes())
            .map_err(|_| ProtocolError("a header name is invalid"))?;
        let value =
            HeaderValue::from_bytes(line.value).map_err(|_| ProtocolError("a header value is invalid"))?;
        headers.append(name, value);
    }
    let closes = connection_has(&headers, "close");
    let keep_alive = match response.version {
        Some(1) => !closes,
        _ => connection_has(&headers, "keep-alive") && !closes,
    };
    buffer.advance(length);
    Ok(Some(ResponseHead { status, headers, keep_alive }))
}

fn connection_has(headers: &HeaderMap, option: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case(option))
}

/// How a response body ends (RFC 9112 §6.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseFraming {
    /// After this many more bytes.
    Length(u64),
    /// After its last chunk.
    Chunked(ChunkedDecoder),
    /// When the upstream closes the connection.
    UntilClose,
}

impl ResponseFraming {
    /// The framing of `head`'s body, the answer to a `method` request.
    pub fn of(method: &Method, head: &ResponseHead) -> Result<Self, ProtocolError> {
        let status = head.status.as_u16();
        if method == Method::HEAD || (100..200).contains(&status) || status == 204 || status == 304 {
            return Ok(Self::Length(0));
        }
        if let Some(last) = head.headers.get_all(header::TRANSFER_ENCODING).iter().next_back() {
            let chunked = last
                .to_str()
                .ok()
                .and_then(|codings| codings.rsplit(',').next())
                .is_some_and(|coding| coding.trim().eq_ignore_ascii_case("chunked"));
            return Ok(if chunked { Self::Chunked(ChunkedDecoder::default()) } else { Self::UntilClose });
        }
        let mut lengths = head.headers.get_all(header::CONTENT_LENGTH).iter();
        match lengths.next() {
            None => Ok(Self::UntilClose),
            Some(first) => {
                let length = parse_length(first.as_bytes())?;
                if lengths.any(|other| parse_length(other.as_bytes()).ok() != Some(length)) {
                    return Err(ProtocolError("it has conflicting Content-Length fields"));
                }
                Ok(Self::Length(length))
            }
        }
    }
}

fn parse_length(value: &[u8]) -> Result<u64, ProtocolError> {
    let invalid = ProtocolError("its Content-Length is invalid");
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(invalid);
    }
    std::str::from_utf8(value).ok().and_then(|digits| digits.parse().ok()).ok_or(invalid)
}

/// Where a chunked body's decoding stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkedDecoder {
    state: ChunkState,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum ChunkState {
    /// At a chunk-size line.
    #[default]
    Size,
    /// Inside a chunk's data, this much of it left.
    Data(u64),
    /// At the CRLF after a chunk's data.
    DataEnd,
    /// In the trailer section, after the last chunk.
    Trailers,
    /// Past the body's end.
    Done,
}

/// What decoding got from the bytes at hand.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Some of the body's data.
    Data(Bytes),
    /// More bytes are needed.
    NeedMore,
    /// The body ended.
    End,
}

/// The longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 8 * 1024;

impl ChunkedDecoder {
    /// Whether the body's end has been decoded.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes from the start of `buffer`, consuming what it used.
    pub fn decode(&mut self, buffer: &mut BytesMut) -> Result<Decoded, ProtocolError> {
        loop {
            match self.state {
                ChunkState::Done => return Ok(Decoded::End),
                ChunkState::Data(left) => {
                    if buffer.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(buffer.len());
                    let left = left - take as u64;
                    self.state = if left == 0 { ChunkState::DataEnd } else { ChunkState::Data(left) };
                    return Ok(Decoded::Data(buffer.split_to(take).freeze()));
                }
                ChunkState::DataEnd => {
                    if buffer.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &buffer[..2] != b"\r\n" {
                        return Err(ProtocolError("a chunk does not end with CRLF"));
                    }
                    buffer.advance(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Size => {
                    let Some(line) = take_line(buffer)? else { return Ok(Decoded::NeedMore) };
                    let digits = line[..].split(|&b| b == b';').next().unwrap_or_default();
                    let size = std::str::from_utf8(digits)
                        .ok()
                        .map(str::trim)
                        .filter(|digits| !digits.is_empty() && digits.len() <= 16)
                        .and_then(|digits| u64::from_str_radix(digits, 16).ok())
                        .ok_or(ProtocolError("a chunk size is invalid"))?;
                    self.state = if size == 0 { ChunkState::Trailers } else { ChunkState::Data(size) };
                }
                ChunkState::Trailers => {
                    let Some(line) = take_line(buffer)? else { return Ok(Decoded::NeedMore) };
                    if line.is_empty() {
                        self.state = ChunkState::Done;
                    }
                }
            }
        }
    }
}

/// The next CRLF-ended line of `buffer`, without its CRLF, consumed.
fn take_line(buffer: &mut BytesMut) -> Result<Option<BytesMut>, ProtocolError> {
    match buffer.windows(2).position(|pair| pair == b"\r\n") {
        Some(end) => {
            let line = buffer.split_to(end);
            buffer.advance(2);
            Ok(Some(line))
        }
        None if buffer.len() > MAX_LINE => Err(ProtocolError("a chunk line is too long")),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_of(text: &str) -> ResponseHead {
        let mut buffer = BytesMut::from(text);
        let head = parse_response_head(&mut buffer).unwrap().unwrap();
        assert!(buffer.is_empty(), "the head is consumed, nothing more");
        head
    }

    fn decode_all(chunks: &[&[u8]]) -> Result<Vec<u8>, ProtocolError> {
        let (mut decoder, mut buffer, mut body) = (ChunkedDecoder::default(), BytesMut::new(), Vec::new());
        let mut pieces = chunks.iter();
        loop {
            match decoder.decode(&mut buffer)? {
                Decoded::Data(data) => body.extend_from_slice(&data),
                Decoded::End => return Ok(body),
                Decoded::NeedMore => match pieces.next() {
                    Some(piece) => buffer.extend_from_slice(piece),
                    None => return Err(ProtocolError("ran out")),
                },
            }
        }
    }

    #[test]
    fn a_request_head_carries_host_its_headers_the_credential_and_the_chosen_framing() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("999"));
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:1"));
        headers.insert("anthropic-version", HeaderValue::from_static("client's"));
        let added = [(HeaderName::from_static("anthropic-version"), HeaderValue::from_static("2023-06-01"))];
        let credential = (&header::AUTHORIZATION, &HeaderValue::from_static("Bearer s"));
        let path = PathAndQuery::from_static("/v1/chat?x=1");
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer client's"));
        headers.insert("x-api-key", HeaderValue::from_static("client's"));
        let dropped = [HeaderName::from_static("x-api-key")];
        let head = RequestHead {
            method: &Method::POST,
            path: &path,
            headers: &headers,
            dropped: &dropped,
            added: &added,
            credential,
        };
        let host = HeaderValue::from_static("example.test:8443");
        let mut out = Vec::new();
        write_request_head(&mut out, &head, &host, RequestFraming::Length(12));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /v1/chat?x=1 HTTP/1.1\r\nhost: example.test:8443\r\ncontent-type: application/json\r\n\
             anthropic-version: 2023-06-01\r\nauthorization: Bearer s\r\ncontent-length: 12\r\n\r\n"
        );
        let empty = HeaderMap::new();
        let get = RequestHead { method: &Method::GET, headers: &empty, ..head };
        let mut out = Vec::new();
        write_request_head(&mut out, &get, &host, RequestFraming::Length(0));
        assert!(
            String::from_utf8_lossy(&out).ends_with("authorization: Bearer s\r\n\r\n"),
            "no length for no body"
        );
        let mut out = Vec::new();
        write_request_head(&mut out, &get, &host, RequestFraming::Chunked);
        assert!(String::from_utf8_lossy(&out).ends_with("transfer-encoding: chunked\r\n\r\n"));
    }

    #[test]
    fn a_response_head_is_parsed_only_once_complete() {
        let mut buffer = BytesMut::from("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n");
        assert!(parse_response_head(&mut buffer).unwrap().is_none());
        buffer.extend_from_slice(b"\r\nok");
        let head = parse_response_head(&mut buffer).unwrap().unwrap();
        assert_eq!(head.status, StatusCode::OK);
        assert!(head.keep_alive);
        assert_eq!(&buffer[..], b"ok", "the body stays in the buffer");
        assert_eq!(ResponseFraming::of(&Method::GET, &head).unwrap(), ResponseFraming::Length(2));
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection_header() {
        assert!(!head_of("HTTP/1.1 200 OK\r\nConnection: Close\r\n\r\n").keep_alive);
        assert!(!head_of("HTTP/1.0 200 OK\r\n\r\n").keep_alive);
        assert!(head_of("HTTP/1.0 200 OK\r\nconnection: keep-alive\r\n\r\n").keep_alive);
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let chunked =
            head_of("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\ncontent-length: 5\r\n\r\n");
        assert!(matches!(ResponseFraming::of(&Method::GET, &chunked).unwrap(), ResponseFraming::Chunked(_)));
        let gzip_only = head_of("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n");
        assert_eq!(ResponseFraming::of(&Method::GET, &gzip_only).unwrap(), ResponseFraming::UntilClose);
        let neither = head_of("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(ResponseFraming::of(&Method::GET, &neither).unwrap(), ResponseFraming::UntilClose);
        let sized = head_of("HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n");
        assert_eq!(ResponseFraming::of(&Method::HEAD, &sized).unwrap(), ResponseFraming::Length(0));
        let empty = head_of("HTTP/1.1 204 No Content\r\ncontent-length: 7\r\n\r\n");
        assert_eq!(ResponseFraming::of(&Method::GET, &empty).unwrap(), ResponseFraming::Length(0));
        let conflicting = head_of("HTTP/1.1 200 OK\r\ncontent-length: 7\r\ncontent-length: 8\r\n\r\n");
        assert!(ResponseFraming::of(&Method::GET, &conflicting).is_err());
        let signed = head_of("HTTP/1.1 200 OK\r\ncontent-length: +7\r\n\r\n");
        assert!(ResponseFraming::of(&Method::GET, &signed).is_err());
    }

    #[test]
    fn malformed_heads_are_errors_not_hangs() {
        assert!(parse_response_head(&mut BytesMut::from("HTTP/1.1 abc\r\n\r\n")).is_err());
        let mut huge = BytesMut::from("HTTP/1.1 200 OK\r\n");
        huge.extend_from_slice(&vec![b'a'; MAX_HEAD]);
        assert!(parse_response_head(&mut huge).is_err());
    }

    #[test]
    fn chunked_bodies_decode_across_any_split_and_skip_extensions_and_trailers() {
        let wire: &[u8] = b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\ntrailer: x\r\n\r\n";
        assert_eq!(decode_all(&[wire]).unwrap(), b"hello, world");
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(decode_all(&bytes).unwrap(), b"hello, world");
        let (mut decoder, mut buffer) = (ChunkedDecoder::default(), BytesMut::from(&b"0\r\n\r\nnext"[..]));
        assert_eq!(decoder.decode(&mut buffer).unwrap(), Decoded::End);
        assert_eq!(&buffer[..], b"next", "bytes after the body are left alone");
    }

    #[test]
    fn broken_chunks_are_errors() {
        assert!(decode_all(&[b"zz\r\n"]).is_err());
        assert!(decode_all(&[b"2\r\nabXY"]).is_err());
        assert!(decode_all(&[&vec![b'1'; MAX_LINE + 1]]).is_err());
    }
}
