import type { ErrorMessage } from "../messages";

/** A failure the person should read now: announced by screen readers as soon as it appears. */
export function Alert({ message, onDismiss }: { message: ErrorMessage; onDismiss?: () => void }) {
  return (
    <div className="alert" role="alert">
      <p className="alert-text">
        {message.text}
        {message.reason !== null && (
          <>
            {" "}
            <span className="reason">
              Reason: <code>{message.reason}</code>
            </span>
          </>
        )}
      </p>
      {onDismiss !== undefined && (
        <button type="button" className="button button-quiet" onClick={onDismiss}>
          Dismiss
        </button>
      )}
    </div>
  );
}
