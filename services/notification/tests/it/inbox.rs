//! The SMTP inbox fixture itself: maildev exiting on a taken port is told from a slow start.

use larder_test_support::MailInbox;

#[tokio::test]
#[should_panic(expected = "was taken while maildev was stopped")]
async fn an_inbox_whose_port_is_taken_while_it_is_stopped_says_so() {
    let mut inbox = MailInbox::start().await;
    inbox.stop();
    let _taken = std::net::TcpListener::bind(("127.0.0.1", inbox.smtp_port())).unwrap();
    inbox.start_again().await;
}
