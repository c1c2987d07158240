namespace LLGBM.Text;

/// <summary>Loads the tokenizer of a checkpoint directory, choosing the implementation from the files present.</summary>
public static class Tokenizers
{
    /// <summary>
    /// The tokenizer of <paramref name="directory"/>: a <c>tokenizer.json</c> whose vocabulary is exactly the 256 byte
    /// symbols without merges (as <see cref="ByteLevelTokenizer.Save"/> writes) gives a <see cref="ByteLevelTokenizer"/>
    /// with the file's special tokens; any other <c>tokenizer.json</c>, or else <c>vocab.json</c> + <c>merges.txt</c>,
    /// gives a <see cref="Qwen2Tokenizer"/>.
    /// </summary>
    /// <exception cref="LlgbmException">
    /// The directory does not exist, holds none of the files (the message names the directory and the files looked
    /// for), or a file is malformed or describes an unsupported tokenizer.
    /// </exception>
    public static ITokenizer Load(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        if (!Directory.Exists(directory))
            throw new LlgbmException(
                $"tokenizer directory {directory} does not exist; expected a checkpoint directory with {TokenizerFiles.TokenizerJsonName}, " +
                $"or {TokenizerFiles.VocabName} + {TokenizerFiles.MergesName}.");
        var json = Path.Combine(directory, TokenizerFiles.TokenizerJsonName);
        if (File.Exists(json))
        {
            var file = TokenizerFiles.ReadTokenizerJson(json);
            return ByteLevelTokenizer.Describes(file)
                ? new ByteLevelTokenizer(WithConfigTokens(file, directory))
                : Qwen2Tokenizer.FromTokenizerJson(file, directory);
        }
        return Qwen2Tokenizer.Load(directory);
    }

    static Dictionary<string, int> WithConfigTokens(TokenizerJson file, string directory)
    {
        var added = new Dictionary<string, int>(file.AddedTokens, StringComparer.Ordinal);
        var config = Path.Combine(directory, TokenizerFiles.ConfigName);
        if (File.Exists(config))
            TokenizerFiles.Merge(added, TokenizerFiles.ReadConfigAddedTokens(config), config);
        return added;
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
