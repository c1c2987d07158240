namespace LLGBM.Evaluation;

/// <summary>
/// How the log-likelihood of a multiple-choice continuation is normalised before the most likely choice is picked.
/// Without normalisation longer choices are penalised for their length; dividing by a length removes that bias.
/// </summary>
public enum LengthNormalization
{
    /// <summary>The summed log-likelihood of the continuation's tokens.</summary>
    None,

    /// <summary>Divided by the number of continuation tokens (the mean log-likelihood per token).</summary>
    Tokens,

    /// <summary>Divided by the number of characters (UTF-16 code units) of the continuation text, its leading space included.</summary>
    Characters,

    /// <summary>Divided by the number of UTF-8 bytes of the continuation text, its leading space included (tokenizer-independent).</summary>
    Bytes,
}
