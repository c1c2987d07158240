namespace LLGBM.Text;

/// <summary>
/// Placeholder for the tokenizer loader being written on another branch; it is replaced by the real implementation
/// at merge and only lets the evaluation command compile here.
/// </summary>
public static class Tokenizers
{
    /// <summary>The tokenizer of a model directory (not available yet: always throws).</summary>
    public static ITokenizer Load(string modelDirectory) =>
        throw new LlgbmException($"Loading the tokenizer of {modelDirectory}: tokenizer loading is not available yet in this build.");
}
