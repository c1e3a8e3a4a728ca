using Microsoft.ML.Cora.IO;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Llm;

/// <summary>
/// Reads LLaMA-family weights: Hugging Face folders (config.json + model.safetensors or a sharded
/// model.safetensors.index.json) and llama2.c <c>.bin</c> checkpoints. Every tensor name and shape is checked
/// against the model; nothing is downloaded.
/// </summary>
internal static class CheckpointLoader
{
    // Tensors some exporters write that carry no weights (recomputed here).
    private static bool IsIgnorable(string name) => name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal);

    /// <summary>Whether <paramref name="name"/> names a file directly inside a folder (no separator, no "..", not empty or hidden).</summary>
    internal static bool IsPlainFileName(string name) =>
        name.Length > 0 && name.Length <= 255 && name == Path.GetFileName(name) && name is not ("." or "..") && !name.Contains('/') && !name.Contains('\\') && !name.Contains('\0');

    /// <summary>The shard files a Hugging Face folder's <c>model.safetensors.index.json</c> names (each checked to be a plain file
    /// name inside the folder), in order; what the loader reads.</summary>
    internal static IReadOnlyList<string> IndexedShards(string index) =>
        WeightMap(index).Values.Distinct().OrderBy(s => s, StringComparer.Ordinal).ToList();

    /// <summary>An index's weight map (tensor name -> shard file), every shard checked to be a plain file name inside the folder.</summary>
    private static Dictionary<string, string> WeightMap(string index)
    {
        IO.FileChecks.RequireRegularFile(index, "Shard index");
        JsonObject? map;
        try { map = (JsonNode.Parse(File.ReadAllText(index)) as JsonObject)?["weight_map"] as JsonObject; }
        catch (Exception e) { throw new InvalidDataException($"{index}: not valid JSON ({e.Message}).", e); }
        if (map is null) throw new InvalidDataException($"{index}: no 'weight_map'.");
        var result = map.ToDictionary(kv => kv.Key, kv => kv.Value is JsonValue v && v.TryGetValue<string>(out var s) ? s : "");
        foreach (var n in result.Values.Distinct())
            if (!IsPlainFileName(n))
                throw new InvalidDataException($"{index}: shard '{IO.ErrorText.Elide(n, 80)}' is not a file name inside the model folder; every shard must sit beside the index.");
        return result;
    }

    /// <summary>Loads a Hugging Face model folder onto the CPU in float32.</summary>
    /// <param name="allowPickle">Pickled PyTorch checkpoints (pytorch_model.bin) can run code when read; they are
    /// refused unless this is true (safetensors is the safe default).</param>
    public static LlamaForCausalLM LoadHuggingFace(string dir, bool allowPickle = false)
    {
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"Model folder not found: '{dir}'.");
        var config = LlamaConfig.FromJsonFile(Path.Combine(dir, "config.json"));
        LlamaForCausalLM? model = null;
        string single = Path.Combine(dir, "model.safetensors"), index = Path.Combine(dir, "model.safetensors.index.json");
        var files = new List<(SafetensorsFile file, HashSet<string>? names)>();
        if (File.Exists(index))
        {
            foreach (var group in WeightMap(index).GroupBy(kv => kv.Value))
            {
                var file = SafetensorsFile.Open(Path.Combine(dir, group.Key));
                var names = group.Select(kv => kv.Key).ToHashSet();
                foreach (var n in names)
                    if (!file.Entries.ContainsKey(n)) throw new InvalidDataException($"{file.Path}: tensor '{n}' listed in {Path.GetFileName(index)} is missing from the shard.");
                files.Add((file, names));
            }
        }
        else if (File.Exists(single)) files.Add((SafetensorsFile.Open(single), null));
        else if (File.Exists(Path.Combine(dir, "pytorch_model.bin")))
        {
            string pickle = Path.Combine(dir, "pytorch_model.bin");
            if (!allowPickle)
                throw new InvalidDataException($"{pickle}: pickled PyTorch checkpoints can execute code when loaded and are refused. Convert the model to safetensors, or opt in with allowPickle (CLI: --allow-pickle) if you trust the file.");
            RequireBytesFor(config, new FileInfo(pickle).Length, pickle);
            model = new LlamaForCausalLM(config);
            LoadPickle(model, pickle);
            return model;
        }
        else throw new FileNotFoundException($"No weights in '{dir}': expected model.safetensors or model.safetensors.index.json.");

        // The weights' bytes are known from the headers: a config.json that needs more than they hold is refused before the
        // model is allocated (a few bytes of JSON must not cost gigabytes of memory).
        RequireBytesFor(config, files.Sum(f => f.file.Entries.Values.Where(e => f.names is null || f.names.Contains(e.Name)).Sum(e => e.End - e.Begin)), Path.Combine(dir, "config.json"));
        model = new LlamaForCausalLM(config);
        var sources = new Dictionary<string, Func<Tensor>>();
        var origin = new Dictionary<string, string>();
        foreach (var (file, names) in files)
            foreach (var e in file.Entries.Values)
            {
                if (names is not null && !names.Contains(e.Name)) continue;
                if (IsIgnorable(e.Name)) continue;
                if (config.TieWordEmbeddings && e.Name == "lm_head.weight") continue;  // some exporters store the tied copy
                var f = file; var n = e.Name;
                sources[n] = () => f.Read(n);
                origin[n] = f.Path;
            }
        Assign(model, sources, origin, dir, shapes: files.SelectMany(f => f.file.Entries.Values).ToDictionary(e => e.Name, e => e.Shape));
        return model;
    }

    /// <summary>The parameters a config describes (embeddings, every layer's projections, norms and biases, the head unless tied).</summary>
    internal static long ParameterCount(LlamaConfig c)
    {
        long d = c.HiddenSize, inter = c.IntermediateSize, att = c.AttentionDim, kv = c.KvDim;
        long layer = d * att + 2 * d * kv + att * d + 3 * d * inter + 2 * d + (c.AttentionBias ? att + 2 * kv : 0);
        return checked(c.VocabSize * d + c.NumHiddenLayers * layer + d + (c.TieWordEmbeddings ? 0 : c.VocabSize * d));
    }

    /// <summary>Refuses a config whose parameters need more bytes than the weights files hold (2 bytes each at the least).</summary>
    private static void RequireBytesFor(LlamaConfig c, long bytesPresent, string what)
    {
        long parameters;
        try { parameters = ParameterCount(c); }
        catch (OverflowException) { throw new InvalidDataException($"{what}: the model it describes is too large to count."); }
        if (parameters > bytesPresent / 2)
            throw new InvalidDataException($"{what}: describes {parameters:N0} parameters (at least {2 * parameters:N0} bytes), but the weights hold {bytesPresent:N0} bytes; the config does not belong to these weights.");
    }

    private static void LoadPickle(LlamaForCausalLM model, string path)
    {
        var sd = new Dictionary<string, Tensor>();
        TorchSharp.PyBridge.PyBridgeModuleExtensions.load_py(model, path, strict: true);
    }

    /// <summary>Checks names and shapes, then copies each tensor into the model (converting dtype).</summary>
    private static void Assign(LlamaForCausalLM model, Dictionary<string, Func<Tensor>> sources, Dictionary<string, string> origin, string where,
        Dictionary<string, long[]> shapes)
    {
        var expected = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var missing = expected.Keys.Where(k => !sources.ContainsKey(k)).ToList();
        var extra = sources.Keys.Where(k => !expected.ContainsKey(k)).ToList();
        if (missing.Count > 0)
            throw new InvalidDataException($"{where}: missing tensor(s) {string.Join(", ", missing.Take(8).Select(m => $"'{m}'"))}{(missing.Count > 8 ? $" and {missing.Count - 8} more" : "")}.");
        if (extra.Count > 0)
            throw new InvalidDataException($"{string.Join(", ", extra.Select(e => origin[e]).Distinct())}: unexpected tensor(s) {string.Join(", ", extra.Take(8).Select(m => $"'{m}'"))} for a {model.Config.ModelType} model with this config.");
        foreach (var (name, p) in expected)
        {
            var shape = shapes[name];
            if (!shape.SequenceEqual(p.shape))
                throw new InvalidDataException($"{origin[name]}: tensor '{name}' has shape [{string.Join(", ", shape)}], the config needs [{string.Join(", ", p.shape)}].");
        }
        using var _ = torch.no_grad();
        foreach (var (name, p) in expected)
        {
            using var t = sources[name]();
            p.copy_(t.to(p.dtype));
        }
    }

    /// <summary>
    /// Loads a llama2.c <c>.bin</c> checkpoint (legacy float32 format). wq and wk are permuted from llama2.c's
    /// adjacent-pair rotary layout to Hugging Face's rotate-half layout, so one forward serves both formats.
    /// </summary>
    public static LlamaForCausalLM LoadLlama2c(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Checkpoint not found: '{path}'.", path);
        Microsoft.ML.Cora.IO.FileChecks.RequireRegularFile(path, "llama2.c checkpoint");
        using var fs = File.OpenRead(path);
        long length = fs.Length;
        if (length < 28) throw new InvalidDataException($"{path}: truncated: {length} bytes, the header alone needs 28.");
        var head = new byte[28];
        fs.ReadExactly(head);
        int[] h = Enumerable.Range(0, 7).Select(i => BitConverter.ToInt32(head, 4 * i)).ToArray();
        int dim = h[0], hidden = h[1], layers = h[2], heads = h[3], kvHeads = h[4], vocabRaw = h[5], seqLen = h[6];
        if (dim <= 0 || hidden <= 0 || layers <= 0 || heads <= 0 || kvHeads <= 0 || seqLen <= 0 || dim % heads != 0 || vocabRaw == 0)
            throw new InvalidDataException($"{path}: not a llama2.c checkpoint (header dim={dim} hidden={hidden} layers={layers} heads={heads} kv_heads={kvHeads} vocab={vocabRaw} seq_len={seqLen}).");
        bool shared = vocabRaw > 0;
        int vocab = Math.Abs(vocabRaw);
        var config = new LlamaConfig
        {
            HiddenSize = dim, IntermediateSize = hidden, NumHiddenLayers = layers, NumAttentionHeads = heads, NumKeyValueHeads = kvHeads,
            VocabSize = vocab, MaxPositionEmbeddings = seqLen, RmsNormEps = 1e-5, RopeTheta = 10000, TieWordEmbeddings = shared,
        }.Validate(path);
        int hd = config.HeadDim, kvDim = config.KvDim;

        // Sections in file order: (name, shape, per-layer?)
        var sections = new List<(string name, long[] shape)>
        {
            ("model.embed_tokens.weight", new long[] { vocab, dim }),
            ("model.layers.*.input_layernorm.weight", new long[] { layers, dim }),
            ("model.layers.*.self_attn.q_proj.weight", new long[] { layers, dim, dim }),
            ("model.layers.*.self_attn.k_proj.weight", new long[] { layers, kvDim, dim }),
            ("model.layers.*.self_attn.v_proj.weight", new long[] { layers, kvDim, dim }),
            ("model.layers.*.self_attn.o_proj.weight", new long[] { layers, dim, dim }),
            ("model.layers.*.post_attention_layernorm.weight", new long[] { layers, dim }),
            ("model.layers.*.mlp.gate_proj.weight", new long[] { layers, hidden, dim }),
            ("model.layers.*.mlp.down_proj.weight", new long[] { layers, dim, hidden }),
            ("model.layers.*.mlp.up_proj.weight", new long[] { layers, hidden, dim }),
            ("model.norm.weight", new long[] { dim }),
            ("(rope tables)", new long[] { seqLen, hd }),   // two legacy tables of [seq_len, head_size/2], skipped
        };
        if (!shared) sections.Add(("lm_head.weight", new long[] { vocab, dim }));
        long needed = 28 + sections.Sum(s => s.shape.Aggregate(1L, (a, b) => a * b)) * 4;
        if (length < needed)
        {
            long at = 28;
            foreach (var s in sections)
            {
                at += s.shape.Aggregate(1L, (a, b) => a * b) * 4;
                if (at > length) throw new InvalidDataException($"{path}: truncated: tensor '{s.name}' ends at byte {at} but the file has {length} bytes (a complete file has {needed}).");
            }
        }
        if (length > needed)
            throw new InvalidDataException($"{path}: {length - needed} unexpected trailing bytes after the last tensor (expected {needed} bytes for this header): not a legacy llama2.c checkpoint, or a different version.");

        var model = new LlamaForCausalLM(config);
        var pars = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using var _ = torch.no_grad();
        foreach (var (name, shape) in sections)
        {
            long count = shape.Aggregate(1L, (a, b) => a * b);
            var buffer = new byte[count * 4];
            fs.ReadExactly(buffer);
            if (name == "(rope tables)") continue;
            using var t = torch.empty(shape, ScalarType.Float32);
            t.bytes = buffer;
            if (!name.Contains('*')) { pars[name].copy_(t); continue; }
            for (int l = 0; l < layers; l++)
            {
                string key = name.Replace("*", l.ToString());
                using var w = t[l];
                if (name.Contains("q_proj")) { using var pw = PermuteForRotateHalf(w, heads); pars[key].copy_(pw); }
                else if (name.Contains("k_proj")) { using var pw = PermuteForRotateHalf(w, kvHeads); pars[key].copy_(pw); }
                else pars[key].copy_(w);
            }
        }
        return model;
    }

    /// <summary>
    /// Reorders the rows of a q/k projection, per head, from interleaved pairs (2i, 2i+1) to halves (i, i + hd/2),
    /// exactly as Hugging Face's LLaMA conversion script does.
    /// </summary>
    /// <param name="w">[heads * hd, in]</param>
    public static Tensor PermuteForRotateHalf(Tensor w, int heads)
    {
        long rows = w.shape[0], cols = w.shape[1];
        return w.view(heads, rows / heads / 2, 2, cols).transpose(1, 2).reshape(rows, cols);
    }

    /// <summary>
    /// Writes a model as a llama2.c <c>.bin</c> checkpoint (the legacy float32 layout <see cref="LoadLlama2c"/> reads): the header,
    /// every weight in llama2.c's order with wq and wk permuted back to adjacent-pair rotary, the two rotary tables, and the head
    /// when it is not tied. Written atomically.
    /// </summary>
    public static void SaveLlama2c(LlamaForCausalLM model, string path)
    {
        var c = model.Config;
        if (c.RopeScaling is not null || c.RopeTheta != 10000 || c.RmsNormEps != 1e-5 || c.AttentionBias || c.HeadDim * c.NumAttentionHeads != c.HiddenSize)
            throw new NotSupportedException($"{path}: llama2.c's format has no attention bias, rope scaling, rope theta other than 10000, RMSNorm epsilon other than 1e-5 or head width other than hidden / heads; save this model as a Hugging Face folder instead.");
        var pars = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        int layers = c.NumHiddenLayers, hd = c.HeadDim;
        AtomicFile.Write(path, stream =>
        {
            using var scope = torch.NewDisposeScope();   // keeps every temporary reachable while libtorch reads it (see Runtime.Scalars)
            using var w = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true);
            foreach (int v in new[] { c.HiddenSize, c.IntermediateSize, layers, c.NumAttentionHeads, c.NumKeyValueHeads,
                         c.TieWordEmbeddings ? c.VocabSize : -c.VocabSize, c.MaxPositionEmbeddings })
                w.Write(v);
            void Put(Tensor t) { using var f = t.detach().to(ScalarType.Float32, torch.CPU).contiguous(); w.Write(f.bytes); }
            void PerLayer(string pattern, Func<Tensor, Tensor>? map = null)
            {
                for (int l = 0; l < layers; l++)
                {
                    var t = pars[pattern.Replace("*", l.ToString())];
                    if (map is null) Put(t); else { using var m = map(t.detach().to(ScalarType.Float32, torch.CPU)); Put(m); }
                }
            }
            Tensor ToPairs(Tensor t, int heads) => t.view(heads, 2, t.shape[0] / heads / 2, t.shape[1]).transpose(1, 2).reshape(t.shape[0], t.shape[1]);
            Put(pars["model.embed_tokens.weight"]);
            PerLayer("model.layers.*.input_layernorm.weight");
            PerLayer("model.layers.*.self_attn.q_proj.weight", t => ToPairs(t, c.NumAttentionHeads));
            PerLayer("model.layers.*.self_attn.k_proj.weight", t => ToPairs(t, c.NumKeyValueHeads));
            PerLayer("model.layers.*.self_attn.v_proj.weight");
            PerLayer("model.layers.*.self_attn.o_proj.weight");
            PerLayer("model.layers.*.post_attention_layernorm.weight");
            PerLayer("model.layers.*.mlp.gate_proj.weight");
            PerLayer("model.layers.*.mlp.down_proj.weight");
            PerLayer("model.layers.*.mlp.up_proj.weight");
            Put(pars["model.norm.weight"]);
            // The legacy rotary tables (cos, then sin, [seq_len, head_size / 2] each): llama2.c's readers skip them.
            using (var freq = torch.pow(10000.0, torch.arange(0, hd, 2, ScalarType.Float64).div(hd)).reciprocal())   // [hd/2]
            using (var angles = torch.outer(torch.arange(c.MaxPositionEmbeddings, ScalarType.Float64), freq))          // [T, hd/2]
            using (var cos = angles.cos()) using (var sin = angles.sin()) { Put(cos); Put(sin); }
            if (!c.TieWordEmbeddings) Put(pars["lm_head.weight"]);
        });
    }

    /// <summary>Writes a model as a Hugging Face folder (config.json + model.safetensors), optionally with a tokenizer file.</summary>
    public static void SaveHuggingFace(LlamaForCausalLM model, string dir, string? tokenizerFile = null)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), model.Config.ToJson());
        SafetensorsFile.Write(Path.Combine(dir, "model.safetensors"), model.named_parameters().Select(p => KeyValuePair.Create(p.name, (Tensor)p.parameter)),
            new Dictionary<string, string> { ["format"] = "pt" });
        if (tokenizerFile is not null)
        {
            string target = tokenizerFile.EndsWith(".json", StringComparison.OrdinalIgnoreCase) ? "tokenizer.json" : "tokenizer.model";
            File.Copy(tokenizerFile, Path.Combine(dir, target), overwrite: true);
        }
    }
}
