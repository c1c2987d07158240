namespace LLGBM.Tasks;

/// <summary>How the answer is read out of a generated completion before exact matching.</summary>
public enum AnswerExtraction
{
    /// <summary>The completion up to the first newline, trimmed.</summary>
    FirstLine,

    /// <summary>A choice letter (A, B, C, …), e.g. from "B", "(B)" or "The answer is B".</summary>
    ChoiceLetter,

    /// <summary>"yes" or "no" (also true/false), case-insensitive.</summary>
    YesNo,

    /// <summary>The last number in the completion (GSM8K-style; after "####" when present), without separators.</summary>
    FinalNumber,
}
