namespace LLGBM;

/// <summary>
/// Base of every error LLGBM raises for bad input or a failed check. Messages are written for people:
/// they name the file, tensor or field concerned and what was expected.
/// </summary>
public class LlgbmException : Exception
{
    /// <summary>Creates an error with a message for people.</summary>
    public LlgbmException(string message) : base(message) { }

    /// <summary>Creates an error with a message for people and the exception that caused it.</summary>
    public LlgbmException(string message, Exception inner) : base(message, inner) { }
}
