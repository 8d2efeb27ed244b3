// Quantization configs: fairseq's lookup and matching rules, the native format, the
// messages of bad configs and the limits (the shipped configs: test_config_shipped.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

#include "config_test_util.h"
#include "core/errors.h"
#include "io/config.h"

namespace pgkm::io {
namespace {

// Expects `f` to throw an InputError whose context is `file` and whose message contains
// every one of `parts`.
template <typename F>
void expect_error(F&& f, const std::string& file, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning " << *parts.begin();
  } catch (const InputError& e) {
    EXPECT_EQ(e.context(), file) << e.what();
    for (const std::string& part : parts) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
          << "'" << part << "' not in: " << e.what();
    }
  }
}

// Parses `text` as "bad.yaml" and plans it on `tensors`; expects an InputError.
void expect_config_error(const std::string& text, const Tensors& tensors,
                         std::initializer_list<std::string> parts, bool strict = false) {
  expect_error([&] { plan_layers(parse_config(text, "bad.yaml"), tensors, strict); }, "bad.yaml",
               parts);
}

Plan plan_text(const std::string& text, const Tensors& tensors, bool strict = false) {
  return plan_layers(parse_config(text, "test.yaml"), tensors, strict);
}

// A small fairseq-named transformer: two layers, an embedding, norms and biases.
Tensors small_fairseq() {
  Tensors t = {f32("decoder.embed_tokens.weight", {100, 64})};
  for (const std::string layer : {"decoder.layers.0.", "decoder.layers.1."}) {
    for (const std::string proj : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
      t.push_back(f32(layer + "self_attn." + proj + ".weight", {64, 64}));
      t.push_back(f32(layer + "self_attn." + proj + ".bias", {64}));
    }
    t.push_back(f32(layer + "fc1.weight", {128, 64}));
    t.push_back(f32(layer + "fc2.weight", {64, 128}));
    t.push_back(f32(layer + "final_layer_norm.weight", {64}));
  }
  return t;
}

const std::string kFairseqTables = R"(
n_centroids:
  Linear: {key: in_features, value: {"64": 8, "*": 4}}
  Embedding: {key: embedding_dim, value: {"*": 16}}
block_sizes:
  Linear: {key: fuzzy_name, value: {fc: 8, attn: 4}}
  Embedding: {key: fuzzy_name, value: {emb: 2}}
)";

TEST(ConfigClassify, DefaultRules) {
  EXPECT_EQ(classify_tensor(f32("a.embed_tokens.weight", {10, 4})), ModuleType::kEmbedding);
  EXPECT_EQ(classify_tensor(f32("word_embeddings.weight", {10, 4})), ModuleType::kEmbedding);
  EXPECT_EQ(classify_tensor(f32("Embed.weight", {10, 4})), ModuleType::kLinear);  // case-sensitive
  EXPECT_EQ(classify_tensor(f32("weight", {10, 4})), ModuleType::kLinear);
  EXPECT_EQ(classify_tensor(f32("conv.weight", {8, 3, 3, 3})), ModuleType::kConv2d);
  EXPECT_EQ(classify_tensor(f32("fc.bias", {10})), ModuleType::kNone);
  EXPECT_EQ(classify_tensor(f32("norm.weight", {10})), ModuleType::kNone);
  EXPECT_EQ(classify_tensor(f32("x.weight", {2, 3, 4})), ModuleType::kNone);
  EXPECT_EQ(classify_tensor(f32("a.weight_g", {10, 4})), ModuleType::kNone);
  EXPECT_EQ(module_name("a.b.weight"), "a.b");
  EXPECT_EQ(module_name("a.weight.b"), "a.weight.b");
  EXPECT_EQ(row_length(f32("conv.weight", {8, 3, 5, 5}), ModuleType::kConv2d), 75);
  EXPECT_EQ(row_length(f32("fc.weight", {8, 24}), ModuleType::kLinear), 24);
}

TEST(ConfigFairseq, FeatureStarAndFuzzyLookups) {
  const Plan plan = plan_text(
      kFairseqTables + "layers_to_quantize: ['decoder\\.(layers\\.\\d+\\.(fc|self)|embed)']\n",
      small_fairseq());
  EXPECT_TRUE(plan.warnings.empty());
  ASSERT_EQ(plan.quantize.size(), 2u * 6 + 1);
  const LayerPlan* fc1 = find_layer(plan, "decoder.layers.0.fc1.weight");
  ASSERT_NE(fc1, nullptr);
  EXPECT_EQ(fc1->type, ModuleType::kLinear);
  EXPECT_EQ(fc1->block_size, 8);                                               // fuzzy "fc"
  EXPECT_EQ(fc1->n_centroids, 8);                                              // in_features "64"
  EXPECT_EQ(find_layer(plan, "decoder.layers.1.fc2.weight")->n_centroids, 4);  // 128 -> "*"
  EXPECT_EQ(find_layer(plan, "decoder.layers.1.self_attn.v_proj.weight")->block_size, 4);
  const LayerPlan* emb = find_layer(plan, "decoder.embed_tokens.weight");
  EXPECT_EQ(emb->type, ModuleType::kEmbedding);
  EXPECT_EQ(emb->block_size, 2);
  EXPECT_EQ(emb->n_centroids, 16);
  EXPECT_TRUE(kept(plan, "decoder.layers.0.self_attn.q_proj.bias"));
  EXPECT_TRUE(kept(plan, "decoder.layers.0.final_layer_norm.weight"));
}

TEST(ConfigFairseq, NumericFeatureKeysMatchTheirText) {
  // PyYAML reads an unquoted 64 as an int, which fairseq's str() lookup never finds; pgkm
  // compares the text, so 64 and "64" both work.
  const Plan plan = plan_text(
      "n_centroids: {Linear: {key: out_features, value: {64: 8, '*': 4}}}\n"
      "block_sizes: {Linear: {key: in_features, value: {64: 4, 128: 8}}}\n"
      "layers_to_quantize: ['decoder\\.layers\\.0\\.fc']\n",
      small_fairseq());
  EXPECT_EQ(find_layer(plan, "decoder.layers.0.fc1.weight")->n_centroids, 4);
  EXPECT_EQ(find_layer(plan, "decoder.layers.0.fc1.weight")->block_size, 4);
  EXPECT_EQ(find_layer(plan, "decoder.layers.0.fc2.weight")->n_centroids, 8);
  EXPECT_EQ(find_layer(plan, "decoder.layers.0.fc2.weight")->block_size, 8);
}

TEST(ConfigFairseq, FuzzyNameNoneAndSeveral) {
  const Tensors t = {f32("enc.attn_fc.weight", {16, 16}), f32("enc.other.weight", {16, 16})};
  const std::string nc = "n_centroids: {Linear: {key: in_features, value: {'*': 4}}}\n";
  const Plan plan =
      plan_text(nc + "block_sizes: {Linear: {key: fuzzy_name, value: {x: 8, '*': 2}}}\n"
                     "layers_to_quantize: ['enc\\.other']\n",
                t);
  EXPECT_EQ(plan.quantize.at(0).block_size, 2);  // no fuzzy key -> "*"
  expect_config_error(nc + "block_sizes: {Linear: {key: fuzzy_name, value: {x: 8}}}\n"
                           "layers_to_quantize: ['enc\\.other']\n",
                      t, {"line 2: block_sizes.Linear", "module 'enc.other'", "no '*' entry"});
  // Several keys: fairseq takes the first in file order; so do we, with a warning.
  const Plan several =
      plan_text(nc + "block_sizes: {Linear: {key: fuzzy_name, value: {fc: 8, attn: 4}}}\n"
                     "layers_to_quantize: ['enc\\.attn']\n",
                t);
  EXPECT_EQ(several.quantize.at(0).block_size, 8);
  ASSERT_EQ(several.warnings.size(), 1u);
  EXPECT_NE(several.warnings[0].find("several fuzzy_name keys (fc, attn); taking 'fc'"),
            std::string::npos)
      << several.warnings[0];
  expect_config_error(
      "block_sizes: {Linear: {key: in_features, value: {'8': 4}}}\n"
      "layers_to_quantize: ['enc\\.other']\n",
      t, {"block_sizes.Linear", "in_features=16", "no '*' entry"});
  expect_config_error(
      "block_sizes: {Embedding: {key: embedding_dim, value: {'*': 4}}}\n"
      "layers_to_quantize: ['enc\\.other']\n",
      t, {"block_sizes has no Linear entry", "module 'enc.other'"});
}

TEST(ConfigFairseq, PrefixMatchWithOptionalModule) {
  const Tensors t = {f32("module.enc.layers.1.fc1.weight", {16, 16}),
                     f32("enc.layers.10.fc1.weight", {16, 16}),
                     f32("x.enc.layers.1.fc2.weight", {16, 16})};
  const Plan plan = plan_text(kFairseqTables + "layers_to_quantize: ['enc\\.layers\\.1']\n", t);
  ASSERT_EQ(plan.quantize.size(), 2u);  // re.match: a prefix, not a substring
  EXPECT_EQ(plan.quantize[0].tensor, "enc.layers.10.fc1.weight");
  EXPECT_EQ(plan.quantize[1].tensor, "module.enc.layers.1.fc1.weight");
  EXPECT_EQ(plan.keep, std::vector<std::string>{"x.enc.layers.1.fc2.weight"});
  // The alternation stays inside the pattern's group, as in fairseq's "(module\.)?(...)".
  const Plan alt = plan_text(kFairseqTables + "layers_to_quantize: ['x|enc\\.layers\\.10']\n", t);
  EXPECT_EQ(alt.quantize.size(), 2u);
}

TEST(ConfigFairseq, StagesInOrderEachModuleOnce) {
  const Plan plan = plan_text(kFairseqTables +
                                  "layers_to_quantize:\n"
                                  "  - 'decoder\\.layers\\.\\d+\\.fc[12]'\n"
                                  "  - 'decoder\\.layers\\.0\\.(self_attn|fc1)'\n",
                              small_fairseq());
  EXPECT_TRUE(plan.warnings.empty());
  ASSERT_EQ(plan.quantize.size(), 8u);  // 4 fc + layer 0's 4 projections, each once
  EXPECT_EQ(find_layer(plan, "decoder.layers.0.fc1.weight")->rule,
            "layers_to_quantize[0] 'decoder\\.layers\\.\\d+\\.fc[12]' (line 9)");
  EXPECT_EQ(find_layer(plan, "decoder.layers.0.self_attn.k_proj.weight")->rule,
            "layers_to_quantize[1] 'decoder\\.layers\\.0\\.(self_attn|fc1)' (line 10)");
  EXPECT_TRUE(std::is_sorted(plan.quantize.begin(), plan.quantize.end(),
                             [](const auto& a, const auto& b) { return a.tensor < b.tensor; }));
}

TEST(ConfigFairseq, UnmatchedPatternWarnsOrFailsWhenStrict) {
  const std::string text = kFairseqTables + "layers_to_quantize: ['decoder\\.fc', 'encoder']\n";
  const Plan plan = plan_text(text, small_fairseq());
  ASSERT_EQ(plan.warnings.size(), 2u);
  EXPECT_EQ(plan.warnings[1],
            "test.yaml: layers_to_quantize[1] 'encoder' (line 8) matches no module (of 15)");
  expect_config_error(text, small_fairseq(), {"layers_to_quantize[0] 'decoder\\.fc'", "strict"},
                      true);
}

TEST(ConfigFairseq, DoubledBackslashPitfallSuggestsTheFix) {
  // fairseq's example: an unquoted plain scalar keeps both backslashes.
  const std::string text = kFairseqTables +
                           "layers_to_quantize:\n"
                           "    - decoder\\\\.layers\\\\.\\d+\\\\.fc[12]\n";
  const Plan plan = plan_text(text, small_fairseq());
  EXPECT_TRUE(plan.quantize.empty());
  ASSERT_EQ(plan.warnings.size(), 1u);
  const std::string& w = plan.warnings[0];
  EXPECT_NE(w.find("'decoder\\\\.layers\\\\.\\d+\\\\.fc[12]' (line 9) matches no module"),
            std::string::npos)
      << w;
  EXPECT_NE(w.find("doubled backslashes"), std::string::npos) << w;
  EXPECT_NE(w.find("'decoder\\.layers\\.\\d+\\.fc[12]', which would match 4 modules"),
            std::string::npos)
      << w;
  expect_config_error(text, small_fairseq(), {"would match 4 modules", "strict"}, true);
}

TEST(ConfigFairseq, MissingTablesTakeFairseqDefaults) {
  const Plan plan =
      plan_text("layers_to_quantize: ['decoder\\.layers\\.0\\.(fc1|self)']\n", small_fairseq());
  ASSERT_EQ(plan.quantize.size(), 5u);
  EXPECT_EQ(find_layer(plan, "decoder.layers.0.fc1.weight")->block_size, 8);
  EXPECT_EQ(find_layer(plan, "decoder.layers.0.self_attn.q_proj.weight")->block_size, 4);
  EXPECT_EQ(plan.quantize[0].n_centroids, 256);
  // Without layers_to_quantize, fairseq's own decoder patterns apply.
  const Plan defaults =
      plan_text("n_centroids: {Linear: {key: in_features, value: {'*': 4}}}\n", small_fairseq());
  EXPECT_EQ(defaults.quantize.size(), 12u);
  EXPECT_EQ(defaults.warnings.size(), 1u);  // decoder.embed_tokens.embeddings.[012]...
}

// A native config over a small BERT-like tensor list.
Tensors small_bert() {
  return {f32("embeddings.word_embeddings.weight", {1000, 32}),
          f32("embeddings.position_embeddings.weight", {64, 32}),
          {"embeddings.position_ids", "I64", {1, 64}},
          f32("encoder.layer.0.attention.self.query.weight", {32, 32}),
          f32("encoder.layer.0.attention.self.query.bias", {32}),
          f32("encoder.layer.0.intermediate.dense.weight", {64, 32}),
          f32("encoder.layer.0.output.dense.weight", {32, 64}),
          f32("encoder.layer.0.output.LayerNorm.weight", {32}),
          f32("pooler.dense.weight", {32, 32})};
}

TEST(ConfigNative, FirstMatchWinsDefaultsAndExplicitFields) {
  const Plan plan = plan_text(R"(pgkm: 1
defaults: {block_size: 8, n_centroids: 16, algorithm: ipq, iterations: 5}
rules:
  - match: 'encoder\.layer\.\d+\.output\.dense\.weight'
    block_size: 16
    algorithm: pg
  - match: 'encoder\..*(query|dense)\.weight'
    n_centroids: 32
    iterations: 0
  - match: '.*word_embeddings.*'
)",
                              small_bert());
  EXPECT_TRUE(plan.warnings.empty());
  ASSERT_EQ(plan.quantize.size(), 4u);
  const LayerPlan* out = find_layer(plan, "encoder.layer.0.output.dense.weight");
  EXPECT_EQ(out->block_size, 16);
  EXPECT_EQ(out->n_centroids, 16);
  EXPECT_EQ(out->algorithm, Algorithm::kPg);
  EXPECT_EQ(out->iterations, 5);
  EXPECT_EQ(out->rule, "rules[0] 'encoder\\.layer\\.\\d+\\.output\\.dense\\.weight' (line 4)");
  const LayerPlan* query = find_layer(plan, "encoder.layer.0.attention.self.query.weight");
  EXPECT_EQ(query->block_size, 8);
  EXPECT_EQ(query->n_centroids, 32);
  EXPECT_EQ(query->algorithm, Algorithm::kIpq);
  EXPECT_EQ(query->iterations, 0);  // explicit 0 beats the default 5
  const LayerPlan* emb = find_layer(plan, "embeddings.word_embeddings.weight");
  EXPECT_EQ(emb->type, ModuleType::kEmbedding);
  EXPECT_EQ(emb->rule.rfind("rules[2]", 0), 0u);
  // Matched by no rule: kept.
  EXPECT_EQ(plan.keep.size(), 5u);
  EXPECT_TRUE(kept(plan, "embeddings.position_ids"));
  EXPECT_TRUE(kept(plan, "pooler.dense.weight"));
}

TEST(ConfigNative, BuiltInDefaultsLeaveAlgorithmToTheCommandLine) {
  const Plan plan = plan_text(
      "pgkm: 1\nrules: [{match: 'embeddings\\.word_embeddings\\.weight'}]\n", small_bert());
  ASSERT_EQ(plan.quantize.size(), 1u);
  EXPECT_EQ(plan.quantize[0].block_size, 8);
  EXPECT_EQ(plan.quantize[0].n_centroids, 256);
  EXPECT_FALSE(plan.quantize[0].algorithm.has_value());
  EXPECT_FALSE(plan.quantize[0].iterations.has_value());
}

TEST(ConfigNative, SkipAndTypeOverrides) {
  const Plan plan = plan_text(R"(pgkm: 1
defaults: {block_size: 4, n_centroids: 8}
types:
  'pooler\.dense\.weight': none
  '.*position_embeddings\.weight': linear
rules:
  - match: '.*query\.weight'
    skip: true
  - match: '.*(position_embeddings|query|intermediate\.dense)\.weight'
)",
                              small_bert());
  ASSERT_EQ(plan.quantize.size(), 2u);
  EXPECT_EQ(find_layer(plan, "embeddings.position_embeddings.weight")->type, ModuleType::kLinear);
  EXPECT_TRUE(kept(plan, "encoder.layer.0.attention.self.query.weight"));
  expect_config_error(R"(pgkm: 1
types: {'pooler\.dense\.weight': none}
rules: [{match: 'pooler\.dense\.weight', block_size: 4, n_centroids: 8}]
)",
                      small_bert(),
                      {"tensor 'pooler.dense.weight' [32, 32] selected by rules[0]",
                       "not the weight of a Linear, Embedding or Conv2d layer"});
  expect_config_error(R"(pgkm: 1
types: {'.*LayerNorm\.weight': conv2d}
rules: [{match: '.*LayerNorm\.weight'}]
)",
                      small_bert(), {"LayerNorm.weight' [32]", "shape of a Conv2d weight"});
}

TEST(ConfigNative, UnusedRulesAndTypesWarn) {
  const std::string text = R"(pgkm: 1
types: {'nothing\\.here': none}
rules:
  - match: 'pooler\.dense\.weight'
    n_centroids: 8
  - match: 'pooler\..*'
  - match: 'decoder\..*'
)";
  const Plan plan = plan_text(text, small_bert());
  ASSERT_EQ(plan.warnings.size(), 3u);
  EXPECT_EQ(plan.warnings[0],
            "test.yaml: types 'nothing\\\\.here' (line 2) matches no tensor (of 9). It contains "
            "doubled backslashes: YAML keeps both backslashes of an unquoted scalar, so '\\\\.' "
            "asks for a literal backslash. Write single backslashes and quote the pattern: "
            "'nothing\\.here', which would match 0 tensors");
  EXPECT_EQ(plan.warnings[1],
            "test.yaml: rules[1] 'pooler\\..*' (line 6) decides no tensor: the 1 it matches are "
            "all taken by earlier rules");
  EXPECT_EQ(plan.warnings[2],
            "test.yaml: rules[2] 'decoder\\..*' (line 7) matches no tensor (of 9)");
  expect_config_error(text, small_bert(), {"types 'nothing", "strict mode"}, true);
}

TEST(ConfigNative, UnknownKeysNameKeyFileAndLine) {
  expect_config_error("pgkm: 1\nrules: [{match: a}]\nrule: []\n", {},
                      {"line 3: unknown key 'rule' in a native config", "rules"});
  expect_config_error("pgkm: 1\ndefaults:\n  blocksize: 4\nrules: [{match: a}]\n", {},
                      {"line 3: unknown key 'blocksize' in defaults", "block_size"});
  expect_config_error("pgkm: 1\nrules:\n  - match: a\n  - match: b\n    n_centroid: 4\n", {},
                      {"line 5: unknown key 'n_centroid' in rules[1]"});
  expect_config_error(kFairseqTables + "layers_to_quantize: [a]\nstages: 3\n", {},
                      {"line 9: unknown key 'stages' in a fairseq config"});
  expect_config_error("block_sizes:\n  Linear: {key: fuzzy_name, values: {fc: 4}}\n", {},
                      {"line 2: unknown key 'values' in block_sizes.Linear"});
  expect_config_error("block_sizes:\n  LayerNorm: {key: fuzzy_name, value: {fc: 4}}\n", {},
                      {"line 2: unknown module type 'LayerNorm' in block_sizes"});
  expect_config_error("n_centroids:\n  Linear: {key: kernel_size, value: {fc: 4}}\n", {},
                      {"line 2: n_centroids.Linear.key 'kernel_size' is not one of"});
}

TEST(ConfigErrors, MalformedConfigsNameFileAndProblem) {
  const Tensors t = small_bert();
  const std::string head = "pgkm: 1\nrules:\n";
  // Bad YAML.
  expect_config_error(head + "  - match: [unclosed\n", t, {"bad.yaml: line 4", "invalid YAML"});
  expect_config_error("pgkm: 1\nrules: [{match: a}]\n\tdefaults: 1\n", t, {"invalid YAML"});
  // Not a config / wrong types.
  expect_config_error("- a\n- b\n", t, {"not a quantization config"});
  expect_config_error("model: x\nseed: 3\n", t, {"found keys: model, seed"});
  expect_config_error("pgkm: 1\nlayers_to_quantize: [a]\nrules: []\n", t,
                      {"mixes fairseq and native keys"});
  expect_config_error("pgkm: 1\nrules: {match: a}\n", t,
                      {"line 2: rules must be a non-empty list"});
  expect_config_error(head + "  - match: a\n    block_size: [4]\n", t,
                      {"line 4: block_size must be a single value"});
  expect_config_error("layers_to_quantize: 'decoder'\n", t,
                      {"line 1: layers_to_quantize must be a non-empty list"});
  expect_config_error("pgkm: 1\nrules: [{match: a}]\nrules: [{match: b}]\n", t,
                      {"line 3: duplicate key 'rules'"});
  // Bad values.
  expect_config_error("pgkm: 2\nrules: [{match: a}]\n", t, {"line 1: pgkm: 2 is not a version"});
  expect_config_error(head + "  - match: a\n    block_size: 33\n", t,
                      {"line 4: block_size 33 is outside 1..32"});
  expect_config_error(head + "  - match: a\n    n_centroids: 1\n", t,
                      {"line 4: n_centroids 1 is outside 2..65536"});
  expect_config_error(head + "  - match: a\n    n_centroids: 4.5\n", t,
                      {"line 4: n_centroids must be an integer, got '4.5'"});
  expect_config_error(head + "  - match: a\n    algorithm: kmeans\n", t,
                      {"line 4: algorithm 'kmeans' is not pg, pg-base or ipq"});
  expect_config_error(head + "  - match: a\n    iterations: -1\n", t,
                      {"line 4: iterations -1 is outside 0..10000"});
  expect_config_error(head + "  - match: a\n    skip: maybe\n", t,
                      {"line 4: skip must be true or false, got 'maybe'"});
  expect_config_error(head + "  - match: a\n    skip: true\n    block_size: 4\n", t,
                      {"line 3: rules[0] has skip: true and quantization settings"});
  expect_config_error(head + "  - match: 'encoder(\\.'\n", t,
                      {"line 3: rules[0].match 'encoder(\\.' is not a valid regex"});
  expect_config_error("block_sizes: {Linear: {key: fuzzy_name, value: {fc: 0}}}\n", t,
                      {"line 1: block_sizes value for 'fc' 0 is outside 1..32"});
  // Selections that cannot be quantized.
  expect_config_error(head +
                          "  - match: 'encoder\\.layer\\.0\\.output\\.dense\\.weight'\n"
                          "    block_size: 5\n",
                      t,
                      {"tensor 'encoder.layer.0.output.dense.weight' [32, 64]",
                       "row length 64 is not divisible by the block size 5"});
  expect_config_error(head + "  - match: '.*query\\.(weight|bias)'\n    block_size: 4\n", t,
                      {"tensor 'encoder.layer.0.attention.self.query.bias' [32]",
                       "is a bias; biases are never quantized"});
  expect_config_error(
      head + "  - match: 'embeddings\\..*'\n    block_size: 4\n", t,
      {"tensor 'embeddings.position_ids' [1, 64]", "dtype I64", "only F32, F16 and BF16"});
  expect_config_error(head + "  - match: 'pooler.*'\n    block_size: 32\n    n_centroids: 64\n", t,
                      {"tensor 'pooler.dense.weight' [32, 32]",
                       "64 centroids exceed its 32 subvectors of size 32"});
}

TEST(ConfigErrors, RegexesRunInPolynomialTimeWithoutBackreferences) {
  // A backtracking matcher takes 2^43 steps for this pattern on a 43-character name.
  const Plan plan = plan_text("pgkm: 1\nrules: [{match: '(.*)*(.*)*x'}]\n", small_bert());
  EXPECT_TRUE(plan.quantize.empty());
  EXPECT_EQ(plan.warnings.size(), 1u);
  expect_config_error("pgkm: 1\nrules: [{match: '(a)\\1'}]\n", {},
                      {"line 2: rules[0].match '(a)\\1' is not a valid regex"});
  expect_config_error("layers_to_quantize: ['(?P<x>enc)']\n", {},
                      {"line 1: layers_to_quantize pattern '(?P<x>enc)' is not a valid regex"});
}

TEST(ConfigErrors, BadFilesAndExactText) {
  expect_error([] { load_config("/nonexistent/pgkm.yaml"); }, "/nonexistent/pgkm.yaml",
               {"cannot open the config file"});
  expect_config_error("", {}, {"not a quantization config"});
  const std::string text = "pgkm: 1  # v1\nrules: [{match: a}]\n";
  const QuantConfig config = parse_config(text, "x.yaml");
  EXPECT_EQ(config.text, text);
  EXPECT_EQ(config.path, "x.yaml");
  EXPECT_EQ(config.format, QuantConfig::Format::kNative);
}

// all-MiniLM-L6-v2 as sentence-transformers saves it.
}  // namespace
}  // namespace pgkm::io

namespace pgkm::io {
namespace {

// Issue 14: std::regex recursed on 20,000 nested groups and crashed pgkm; patterns are now
// bounded before they are compiled, and a second YAML document or invalid UTF-8 is an error.
TEST(ConfigLimits, PathologicalPatternsAreRefusedNotCompiled) {
  const std::string head = "pgkm: 1\ndefaults:\n  block_size: 4\n  n_centroids: 16\nrules:\n";
  const std::vector<TensorDesc> tensors = {{"fc.weight", "F32", {16, 16}}};
  auto rejects = [&](const std::string& pattern, const std::string& phrase) {
    expect_error(
        [&] {
          plan_layers(parse_config(head + "  - match: '" + pattern + "'\n", "bad.yaml"), tensors,
                      false);
        },
        "bad.yaml", {"refused", phrase});
  };
  rejects(std::string(20000, '(') + "a" + std::string(20000, ')'), "bytes long");
  rejects(std::string(33, '(') + "fc" + std::string(33, ')') + "\\.weight", "33 deep");
  rejects(std::string(5000, 'a'), "5000 bytes");
  rejects("fc\xff", "not valid UTF-8");
  rejects("fc\xc3", "not valid UTF-8");  // cut short
  // At the limits, and real UTF-8, are fine.
  EXPECT_NO_THROW(plan_layers(parse_config(head + "  - match: '" + std::string(32, '(') + "fc" +
                                               std::string(32, ')') + "\\.weight'\n",
                                           "ok.yaml"),
                              tensors, false));
  EXPECT_NO_THROW(parse_config(head + "  - match: 'caf\xc3\xa9'\n", "ok.yaml"));
}

TEST(ConfigLimits, TwoDocumentsAreAnError) {
  expect_error([] { parse_config("pgkm: 1\nrules: []\n---\npgkm: 1\n", "two.yaml"); }, "two.yaml",
               {"2 YAML documents or more"});
}

// yaml-cpp 0.7's LoadAll never returns on these (found by fuzz_config): each must end
// with an error in bounded time.
TEST(ConfigLimits, StrayTopLevelCommaIsAnErrorNotAHang) {
  for (const char* text : {",", ", a\n  - b\n", "- a\n, b\n", "# c\n,\nrules: []\n"}) {
    EXPECT_THROW(parse_config(text, "comma.yaml"), InputError) << text;
  }
}

}  // namespace
}  // namespace pgkm::io
