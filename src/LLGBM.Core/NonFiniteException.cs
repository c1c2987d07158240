namespace LLGBM;

/// <summary>
/// A tensor or number that must be finite holds NaN or ±infinity: a weight file read, a value computed at run time
/// (a delta, a merge, a log-likelihood) or a tensor about to be written. The message names it (see
/// <see cref="FiniteCheck"/>).
/// </summary>
public sealed class NonFiniteException : LlgbmException
{
    /// <summary>Creates the error for <paramref name="subject"/>, described by <paramref name="detail"/>.</summary>
    /// <param name="subject">What holds the values, naming the file and tensor where there is one.</param>
    /// <param name="detail">What was found, e.g. "2 NaN of 1,024 values (first at [0, 3])".</param>
    public NonFiniteException(string subject, string detail)
        : base($"{subject} holds {detail}; expected only finite numbers.")
    {
        Subject = subject;
    }

    /// <summary>What holds the non-finite values.</summary>
    public string Subject { get; }
}
