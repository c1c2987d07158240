namespace LLGBM.Text;

/// <summary>Loads the tokenizer of a checkpoint directory, choosing the implementation from the files present.</summary>
public static class Tokenizers
{
    /// <summary>
    /// The tokenizer of <paramref name="directory"/>: a <see cref="Qwen2Tokenizer"/> from <c>tokenizer.json</c>, or
    /// else from <c>vocab.json</c> + <c>merges.txt</c>.
    /// </summary>
    /// <exception cref="LlgbmException">
    /// The directory does not exist, holds none of the files (the message names the directory and the files looked
    /// for), or a file is malformed or describes an unsupported tokenizer.
    /// </exception>
    public static ITokenizer Load(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        if (!Directory.Exists(directory))
            throw new LlgbmException($"tokenizer directory {directory} does not exist; expected a checkpoint directory with {TokenizerFiles.TokenizerJsonName}, or {TokenizerFiles.VocabName} + {TokenizerFiles.MergesName}.");
        var json = Path.Combine(directory, TokenizerFiles.TokenizerJsonName);
        if (File.Exists(json))
            return Qwen2Tokenizer.FromTokenizerJson(TokenizerFiles.ReadTokenizerJson(json), directory);
        return Qwen2Tokenizer.Load(directory);
    }

    /// <summary>The error message for a directory without tokenizer files, naming what is there and what is missing.</summary>
    internal static string MissingFilesMessage(string directory)
    {
        var vocab = File.Exists(Path.Combine(directory, TokenizerFiles.VocabName));
        var merges = File.Exists(Path.Combine(directory, TokenizerFiles.MergesName));
        var looked = $"looked for {TokenizerFiles.TokenizerJsonName}, or {TokenizerFiles.VocabName} + {TokenizerFiles.MergesName}";
        return (vocab, merges) switch
        {
            (true, false) => $"no tokenizer in {directory}: {TokenizerFiles.VocabName} is there but {TokenizerFiles.MergesName} is missing ({looked}).",
            (false, true) => $"no tokenizer in {directory}: {TokenizerFiles.MergesName} is there but {TokenizerFiles.VocabName} is missing ({looked}).",
            _ => $"no tokenizer in {directory}: {looked}.",
        };
    }
}
